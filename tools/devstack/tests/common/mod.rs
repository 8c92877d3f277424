//! Helpers shared by the integration tests.
#![allow(dead_code)]

/// The SDK config for moto, or `None` when moto tests are not requested.
pub async fn moto() -> Option<aws_config::SdkConfig> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .ok()
        .filter(|v| !v.is_empty());
    let required = std::env::var("WAGATE_TEST_MOTO").is_ok_and(|v| v == "1")
        || std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
    match endpoint {
        Some(endpoint) => {
            assert!(
                endpoint.starts_with("http://127.0.0.1:")
                    || endpoint.starts_with("http://localhost:"),
                "AWS_ENDPOINT_URL={endpoint}: these tests only run against a loopback moto_server"
            );
            Some(
                wagate_devstack::local_sdk_config()
                    .await
                    .expect("sdk config"),
            )
        }
        None if required => panic!(
            "AWS_ENDPOINT_URL is not set: run scripts/test.sh, or start moto_server \
             (scripts/moto.sh start 4567) and export AWS_ENDPOINT_URL=http://127.0.0.1:4567"
        ),
        None => {
            eprintln!("skipped: AWS_ENDPOINT_URL is not set (no moto_server); see scripts/test.sh");
            None
        }
    }
}
