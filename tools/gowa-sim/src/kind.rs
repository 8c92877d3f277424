//! Which WhatsApp server the simulator speaks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The WhatsApp API server a simulator mimics. One binary, one kind per running simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// go-whatsapp-web-multidevice v9.2 (the default).
    #[default]
    Gowa,
    /// WAHA (devlikeapro/waha), Plus tier, GOWS engine.
    Waha,
    /// Evolution API v2 (evolution-foundation/evolution-api), Baileys integration.
    Evolution,
    /// Meta's WhatsApp Cloud API (Graph API v23.0).
    Meta,
}

impl Kind {
    /// Every kind, in a stable order.
    pub const ALL: [Kind; 4] = [Kind::Gowa, Kind::Waha, Kind::Evolution, Kind::Meta];

    /// The wire and command-line name (`gowa`, `waha`, `evolution`, `meta`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gowa => "gowa",
            Self::Waha => "waha",
            Self::Evolution => "evolution",
            Self::Meta => "meta",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gowa" => Ok(Self::Gowa),
            "waha" => Ok(Self::Waha),
            "evolution" => Ok(Self::Evolution),
            "meta" => Ok(Self::Meta),
            other => Err(format!(
                "unknown kind {other:?} (expected gowa, waha, evolution or meta)"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_and_print_their_names() {
        for kind in Kind::ALL {
            assert_eq!(kind.as_str().parse::<Kind>().unwrap(), kind);
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert!("whatsapp".parse::<Kind>().is_err());
        assert_eq!(Kind::default(), Kind::Gowa);
    }
}
