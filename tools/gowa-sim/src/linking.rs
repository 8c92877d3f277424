//! Device linking (QR codes, pairing codes, the "phone scanned it" step) and Meta's webhook
//! verification handshake.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use crate::config::DeviceState;
use crate::events;
use crate::kind::Kind;
use crate::state::{PendingLink, SimState};

/// Why a scan could not complete.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    #[error("no device with id {0:?}")]
    UnknownDevice(String),
    #[error(
        "a meta phone number is registered (POST /{{version}}/{{phone-number-id}}/register), not linked by a scan"
    )]
    NotLinkable,
    #[error("jid must be a user JID (digits@s.whatsapp.net) or a number, not {0:?}")]
    BadJid(String),
}

/// Completes a device link: the device logs in (as `jid` when given) and the kind sends its
/// status-change event.
pub(crate) fn scan(
    state: &Arc<SimState>,
    device_id: &str,
    jid: Option<&str>,
) -> Result<(), ScanError> {
    if state.kind() == Kind::Meta {
        return Err(ScanError::NotLinkable);
    }
    let jid = match jid.map(str::trim).filter(|j| !j.is_empty()) {
        None => None,
        Some(raw) => {
            let user = raw
                .split('@')
                .next()
                .unwrap_or_default()
                .trim_start_matches('+');
            let ok = (5..=15).contains(&user.len()) && user.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(ScanError::BadJid(raw.to_owned()));
            }
            Some(format!("{user}@s.whatsapp.net"))
        }
    };
    let linked = state.update_device(device_id, |device| {
        if let Some(jid) = jid {
            device.spec.jid = jid;
        } else if device.spec.jid.is_empty()
            && let Some(phone) = device.extra.link.as_ref().and_then(|l| l.phone.clone())
        {
            device.spec.jid = format!("{phone}@s.whatsapp.net");
        }
        device.set_state(DeviceState::LoggedIn);
    });
    if linked.is_none() {
        return Err(ScanError::UnknownDevice(device_id.to_owned()));
    }
    tracing::info!(device = device_id, "device linked (scan)");
    events::schedule_status_change(state, device_id);
    Ok(())
}

/// A new link for a device: a fresh QR payload, and a pairing code when `phone` is given.
pub(crate) fn new_link(phone: Option<&str>, dashed: bool) -> PendingLink {
    let refs: [u8; 18] = rand::random();
    let keys: [u8; 32] = rand::random();
    let qr = format!(
        "2@{},{},{},{}",
        STANDARD.encode(refs),
        STANDARD.encode(keys),
        STANDARD.encode(&keys[..16]),
        STANDARD.encode(&refs[..12])
    );
    let pairing_code = phone.map(|_| pairing_code(dashed));
    let id: [u8; 16] = rand::random();
    let hex = hex::encode(id);
    PendingLink {
        qr,
        pairing_code,
        phone: phone.map(|p| p.chars().filter(char::is_ascii_digit).collect()),
        image: format!(
            "scan-qr-{}-{}-{}-{}-{}.png",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        ),
        expires_at: time::OffsetDateTime::now_utc()
            + time::Duration::seconds(i64::from(QR_DURATION_SECS)),
    }
}

/// How long a QR code stays valid, in seconds (GOWA's `qr_duration`).
pub(crate) const QR_DURATION_SECS: u32 = 30;

/// An 8-character pairing code of WhatsApp's alphabet (no 0, O, I, 1); `ABCD-EFGH` when
/// `dashed` (WAHA), `ABCDEFGH` otherwise (Evolution).
fn pairing_code(dashed: bool) -> String {
    const ALPHABET: &[u8] = b"123456789ABCDEFGHJKLMNPQRSTVWXYZ";
    let code: String = (0..8)
        .map(|_| ALPHABET[rand::random::<u8>() as usize % ALPHABET.len()] as char)
        .collect();
    if dashed {
        format!("{}-{}", &code[..4], &code[4..])
    } else {
        code
    }
}

/// A PNG picture for a QR payload: a 29 × 29 module pattern with the three finder squares,
/// 8 pixels per module and a 4-module quiet zone. It is a valid PNG but not a decodable QR
/// code: nothing scans it (the control API's scan stands in for the phone).
pub(crate) fn qr_png(payload: &str) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    const MODULES: usize = 29;
    const QUIET: usize = 4;
    const SCALE: usize = 8;
    let seed = Sha256::digest(payload.as_bytes());
    let dark = |x: usize, y: usize| -> bool {
        let finder = |fx: usize, fy: usize| {
            let (dx, dy) = (x.wrapping_sub(fx), y.wrapping_sub(fy));
            if dx < 7 && dy < 7 {
                Some(
                    dx == 0
                        || dx == 6
                        || dy == 0
                        || dy == 6
                        || (2..=4).contains(&dx) && (2..=4).contains(&dy),
                )
            } else {
                None
            }
        };
        if let Some(d) = finder(0, 0)
            .or_else(|| finder(MODULES - 7, 0))
            .or_else(|| finder(0, MODULES - 7))
        {
            return d;
        }
        let bit = (x * 31 + y * 17) % 256;
        seed[bit / 8 % 32] >> (bit % 8) & 1 == 1
    };
    let side = (MODULES + 2 * QUIET) * SCALE;
    let mut raw = Vec::with_capacity(side * (side + 1));
    for py in 0..side {
        raw.push(0); // filter: none
        for px in 0..side {
            let (mx, my) = (px / SCALE, py / SCALE);
            let inside =
                (QUIET..QUIET + MODULES).contains(&mx) && (QUIET..QUIET + MODULES).contains(&my);
            let black = inside && dark(mx - QUIET, my - QUIET);
            raw.push(if black { 0 } else { 255 });
        }
    }
    png_grayscale(side as u32, side as u32, &raw)
}

/// An 8-bit grayscale PNG from filtered scanlines, compressed with stored deflate blocks.
fn png_grayscale(width: u32, height: u32, scanlines: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = scanlines.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend_from_slice(&len.to_le_bytes());
        zlib.extend_from_slice(&(!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    zlib.extend_from_slice(&adler32(scanlines).to_be_bytes());
    chunk(&mut png, b"IDAT", &zlib);
    chunk(&mut png, b"IEND", &[]);
    png
}

fn chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    png.extend_from_slice(&crc32(&crc_input).to_be_bytes());
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in data {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    (b << 16) | a
}

/// What Meta's verification handshake against a callback URL found.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HandshakeReport {
    /// The URL requested, with its query (the verify token redacted).
    pub url: String,
    /// The challenge sent.
    pub challenge: String,
    /// The status answered, when an answer came.
    pub status: Option<u16>,
    /// The body answered (at most 1 KiB, lossy UTF-8).
    pub body: String,
    /// Whether the answer was 200 with exactly the challenge as its body: Meta's condition to
    /// save the callback.
    pub verified: bool,
    /// A network error, if the request failed.
    pub error: Option<String>,
}

/// `GET url?hub.mode=subscribe&hub.challenge=…&hub.verify_token=…` as Meta's console does when
/// a callback URL is saved.
pub(crate) async fn verify_callback(
    http: &reqwest::Client,
    url: &str,
    verify_token: &str,
    challenge: Option<&str>,
) -> anyhow::Result<HandshakeReport> {
    let mut target =
        reqwest::Url::parse(url).map_err(|e| anyhow::anyhow!("url {url:?} does not parse: {e}"))?;
    crate::webhook::ensure_loopback_url(&target)?;
    let challenge = challenge
        .map(str::to_owned)
        .unwrap_or_else(|| (1_000_000_000u64 + rand::random::<u64>() % 1_000_000_000).to_string());
    target
        .query_pairs_mut()
        .append_pair("hub.mode", "subscribe")
        .append_pair("hub.challenge", &challenge)
        .append_pair("hub.verify_token", verify_token);
    let shown = target.as_str().replace(
        &url::form_urlencoded::byte_serialize(verify_token.as_bytes()).collect::<String>(),
        "***",
    );
    let answer = http
        .get(target)
        .header(
            "User-Agent",
            "facebookplatform/1.0 (+http://developers.facebook.com)",
        )
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await;
    let report = match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let bytes = response.bytes().await.unwrap_or_default();
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).into_owned();
            HandshakeReport {
                url: shown,
                verified: status == 200 && body == challenge,
                challenge,
                status: Some(status),
                body,
                error: None,
            }
        }
        Err(err) => HandshakeReport {
            url: shown,
            challenge,
            status: None,
            body: String::new(),
            verified: false,
            error: Some(err.to_string()),
        },
    };
    tracing::info!(url = %report.url, verified = report.verified, status = ?report.status, "meta verification handshake");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_pictures_are_valid_pngs() {
        let png = qr_png("2@abc");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(
            png.ends_with(&[0xae, 0x42, 0x60, 0x82]),
            "IEND's CRC closes the file"
        );
        assert_eq!(&png[12..16], b"IHDR");
    }

    #[test]
    fn crc_and_adler_match_known_values() {
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
    }

    #[test]
    fn pairing_codes_use_whatsapps_alphabet() {
        let code = pairing_code(true);
        assert_eq!(code.len(), 9);
        assert_eq!(&code[4..5], "-");
        assert!(!code.contains(['0', 'O', 'I']));
        assert_eq!(pairing_code(false).len(), 8);
    }
}
