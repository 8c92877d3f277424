//! The local JWT issuer: tokens verify against its JWKS exactly as the config API will do it.

use std::path::PathBuf;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wagate_devstack::jwt::{ADMIN_SCOPE, JWKS_FILE, SIGNING_KEY_FILE, TENANT_SCOPE};
use wagate_devstack::{Claims, JwksServer, LocalIssuer, TokenSpec};

/// Verifies `token` the way a resource server does: pick the JWK by `kid`, check ES256,
/// signature, `exp`, `iss` and `aud`.
fn verify(jwks_json: &str, token: &str) -> jsonwebtoken::errors::Result<Claims> {
    let jwks: JwkSet = serde_json::from_str(jwks_json).expect("JWKS parses as a JwkSet");
    let header = decode_header(token)?;
    assert_eq!(header.alg, Algorithm::ES256);
    let kid = header.kid.expect("the header names its key");
    let jwk = jwks.find(&kid).expect("the JWKS holds the token's key");
    let key = DecodingKey::from_jwk(jwk)?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&["wagate-local"]);
    validation.set_audience(&["wagate-config-api"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 0;
    decode::<Claims>(token, &key, &validation).map(|data| data.claims)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wagate-devstack-{name}-{}",
        wagate_devstack::unique_stack_name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn admin_token_round_trips_through_the_jwks() {
    let issuer = LocalIssuer::generate();

    let claims = verify(&issuer.jwks_json(), &issuer.token(&TokenSpec::admin())).expect("valid");

    assert_eq!(claims.scope, ADMIN_SCOPE);
    assert_eq!(claims.tenant_id, None);
    assert_eq!(claims.iss, "wagate-local");
    assert_eq!(claims.aud, "wagate-config-api");
    assert_eq!(claims.exp - claims.iat, 3600);
}

#[test]
fn tenant_token_carries_its_tenant_and_tenant_scope() {
    let issuer = LocalIssuer::generate();

    let claims = verify(
        &issuer.jwks_json(),
        &issuer.token(&TokenSpec::tenant("acme")),
    )
    .expect("valid");

    assert_eq!(claims.scope, TENANT_SCOPE);
    assert_eq!(claims.tenant_id.as_deref(), Some("acme"));
    assert_eq!(claims.sub, "local-tenant-acme");
}

#[test]
fn jwks_describes_a_p256_signing_key() {
    let issuer = LocalIssuer::generate();
    let jwks: serde_json::Value = serde_json::from_str(&issuer.jwks_json()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], issuer.kid());
    assert_eq!(key["x"].as_str().unwrap().len(), 43, "32 bytes, base64url");
    assert_eq!(key["y"].as_str().unwrap().len(), 43, "32 bytes, base64url");
    assert!(key.get("d").is_none(), "no private part in the JWKS");
}

#[test]
fn expired_token_is_rejected() {
    let issuer = LocalIssuer::generate();
    let token = issuer.token(&TokenSpec::admin().ttl(time::Duration::seconds(-120)));

    let err = verify(&issuer.jwks_json(), &token).expect_err("expired");

    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    );
}

#[test]
fn token_of_another_key_is_rejected() {
    let issuer = LocalIssuer::generate();
    let stranger = LocalIssuer::generate();
    // The stranger's token under the trusted key's kid.
    let forged = {
        let token = stranger.token(&TokenSpec::admin());
        let trusted = issuer.token(&TokenSpec::admin());
        let header = trusted.split('.').next().unwrap();
        let rest: Vec<&str> = token.split('.').skip(1).collect();
        format!("{header}.{}", rest.join("."))
    };

    let err = verify(&issuer.jwks_json(), &forged).expect_err("bad signature");

    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidSignature
    );
}

#[test]
fn wrong_audience_is_rejected() {
    let issuer = LocalIssuer::generate();
    let token = issuer.token(&TokenSpec::admin().audience("someone-else"));

    let err = verify(&issuer.jwks_json(), &token).expect_err("wrong aud");

    assert_eq!(
        *err.kind(),
        jsonwebtoken::errors::ErrorKind::InvalidAudience
    );
}

#[test]
fn saved_issuer_loads_with_the_same_key_and_a_private_key_file() {
    let dir = temp_dir("save");
    let issuer = LocalIssuer::generate();

    issuer.save(&dir).expect("save");
    let loaded = LocalIssuer::load(&dir).expect("load");

    assert_eq!(loaded.kid(), issuer.kid());
    assert_eq!(
        std::fs::read_to_string(dir.join(JWKS_FILE)).unwrap(),
        issuer.jwks_json()
    );
    let token = loaded.token(&TokenSpec::tenant("t1"));
    verify(&issuer.jwks_json(), &token).expect("a token of the loaded key verifies");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join(SIGNING_KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "the private key is readable by its owner only"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn load_or_generate_keeps_an_existing_key() {
    let dir = temp_dir("keep");

    let (first, created) = LocalIssuer::load_or_generate(&dir).unwrap();
    let (second, created_again) = LocalIssuer::load_or_generate(&dir).unwrap();

    assert!(created);
    assert!(!created_again);
    assert_eq!(first.kid(), second.kid());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cli_keygen_token_and_jwks_work_together() {
    let dir = temp_dir("cli");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .expect("run wagate-dev");
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };

    run(&["jwt-keygen"]);
    let jwks_before = run(&["jwks"]);
    run(&["jwt-keygen"]); // no-op: the key stays
    let jwks = run(&["jwks"]);
    let admin = run(&["token", "--admin"]);
    let tenant = run(&["token", "--tenant", "demo", "--ttl-secs", "60"]);
    let expired = run(&["token", "--admin", "--ttl-secs", "-60"]);

    assert_eq!(jwks, jwks_before);
    assert_eq!(admin.lines().count(), 1, "one token on stdout");
    assert_eq!(verify(&jwks, admin.trim()).unwrap().scope, ADMIN_SCOPE);
    let claims = verify(&jwks, tenant.trim()).unwrap();
    assert_eq!(claims.tenant_id.as_deref(), Some("demo"));
    assert_eq!(claims.exp - claims.iat, 60);
    assert!(verify(&jwks, expired.trim()).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn token_needs_exactly_one_caller() {
    let dir = temp_dir("caller");
    LocalIssuer::generate().save(&dir).unwrap();
    let status = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_wagate-dev"))
            .args(args)
            .arg("--dir")
            .arg(&dir)
            .output()
            .unwrap()
            .status
    };

    assert!(
        !status(&["token"]).success(),
        "neither --admin nor --tenant"
    );
    assert!(
        !status(&["token", "--admin", "--tenant", "x"]).success(),
        "both"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn jwks_server_serves_the_jwks_on_loopback() {
    let issuer = LocalIssuer::generate();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = JwksServer::start(listener, issuer.jwks_json()).unwrap();

    let get = |path: &'static str| {
        let addr = server.addr();
        async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream
                .write_all(format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let found = get("/.well-known/jwks.json").await;
    let missing = get("/signing-key.pk8").await;

    assert!(found.starts_with("HTTP/1.1 200"), "{found}");
    let body = found.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(body, issuer.jwks_json());
    assert!(server.url().ends_with("/.well-known/jwks.json"));
    assert!(
        missing.starts_with("HTTP/1.1 404"),
        "nothing else is served: {missing}"
    );
}
