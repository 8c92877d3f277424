//! `go_marshal` and `sign` against GOWA's signed samples (tests/fixtures/gowa/).

mod common;

use common::{SAMPLES, fixture};
use gowa_sim::{go_marshal, sign};
use serde_json::Value;

/// The table in shared/contracts/README.md (copied to tests/fixtures/gowa/SIGNATURES.md).
const EXPECTED: [(&str, usize, &str, &str); 4] = [
    (
        "gowa-message-text-incoming.json",
        518,
        "sha256=b0c547901276dfbe584429d7cf24222c14d564e9039bf7fcba9181ef84db1721",
        "sha256=ba2ba4869e4f36acd3d5192596ed16a867f507f255ec74ee258644c2b8133850",
    ),
    (
        "gowa-message-image-group-with-caption.json",
        507,
        "sha256=ab11e42f41d2d8117f3944985eb84a42fbb97915700320182cedf1db3c85b45c",
        "sha256=f6e2502274644be2e0389a9245a067fd34086d75d4956e9fda046128ba5f1d3a",
    ),
    (
        "gowa-message-ack-delivered.json",
        428,
        "sha256=e0117c2f171cc9af15af54093ef5bea0b84b3fe42d3705b674daf0f9cfc2a714",
        "sha256=8d7b51cd3773c472f5aaf5f3212e9d1ea7fff30ea9c3ee000b5a5e70eacfcadc",
    ),
    (
        "gowa-group-participants-join.json",
        266,
        "sha256=43327c5f15b34ad3b8952b2998991401925dba1e6e14262beefb1ee375c3702c",
        "sha256=dcf27eddd6fe8b2cb014708fdf6f8fb14bc6b8b4588ce54ee21c6fbfbc73b84f",
    ),
];

#[test]
fn every_sample_remarshals_to_its_exact_bytes() {
    for name in SAMPLES {
        let bytes = fixture(name);
        let value: Value = serde_json::from_slice(&bytes).unwrap();

        let remarshalled = go_marshal(&value);

        assert_eq!(
            String::from_utf8_lossy(&remarshalled),
            String::from_utf8_lossy(&bytes),
            "{name}"
        );
        assert_eq!(remarshalled, bytes, "{name}");
    }
}

#[test]
fn sign_reproduces_the_contract_signatures_for_the_default_secret() {
    for (name, size, with_secret, _) in EXPECTED {
        let bytes = fixture(name);
        assert_eq!(bytes.len(), size, "{name} changed on disk");
        assert_eq!(sign(b"secret", &bytes), with_secret, "{name}");
    }
}

#[test]
fn sign_reproduces_the_contract_signatures_for_a_device_secret() {
    for (name, _, _, with_device_secret) in EXPECTED {
        assert_eq!(
            sign(b"super-secret-key", &fixture(name)),
            with_device_secret,
            "{name}"
        );
    }
}

#[test]
fn a_reordered_and_pretty_printed_sample_marshals_back_to_the_signed_bytes() {
    let bytes = fixture("gowa-message-text-incoming.json");
    let value: Value = serde_json::from_slice(&bytes).unwrap();
    let pretty = serde_json::to_string_pretty(&value).unwrap();
    let reparsed: Value = serde_json::from_str(&pretty).unwrap();

    assert_eq!(go_marshal(&reparsed), bytes);
    assert_eq!(
        sign(b"secret", &go_marshal(&reparsed)),
        "sha256=b0c547901276dfbe584429d7cf24222c14d564e9039bf7fcba9181ef84db1721"
    );
}
