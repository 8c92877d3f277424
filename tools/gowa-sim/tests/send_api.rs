//! The send routes: successes in every body form, and GOWA's error answers.

mod common;

use common::{
    PHONE, PHONE_JID, assert_send_success, client, default_sim, send_text, status_and_json,
};
use gowa_sim::{DeviceState, MSG_NOT_CONNECTED, MSG_NOT_LOGGED_IN};
use reqwest::multipart::{Form, Part};
use serde_json::json;

fn png_part() -> Part {
    Part::bytes(vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3])
        .file_name("receipt.png")
        .mime_str("image/png")
        .unwrap()
}

#[tokio::test]
async fn send_message_as_json_succeeds_and_is_recorded() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .header("X-Device-Id", "demo")
        .json(&json!({"phone": PHONE, "message": "Your booking is confirmed", "reply_message_id": "3EB0B430B6F8F1D0E053AC"}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Message");
    let recorded = sim.requests_to("/send/message");
    assert_eq!(recorded.len(), 1);
    let request = &recorded[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.device_id.as_deref(), Some("demo"));
    assert_eq!(request.status, Some(200));
    assert!(request.authorized);
    let sent = request.json.as_ref().expect("JSON body recorded");
    assert_eq!(sent["message"], "Your booking is confirmed");
    assert_eq!(sent["reply_message_id"], "3EB0B430B6F8F1D0E053AC");
    assert!(request.form.is_none() && request.files.is_empty());
}

#[tokio::test]
async fn send_message_as_url_encoded_form_succeeds() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("phone={PHONE}&message=hello+there"))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Message");
    let form = sim.requests()[0].form.clone().expect("form recorded");
    assert_eq!(form["message"], "hello there");
}

#[tokio::test]
async fn send_image_as_multipart_file_succeeds_and_records_the_file_part() {
    let sim = default_sim().await;
    let form = Form::new()
        .text("phone", PHONE)
        .text("caption", "Receipt")
        .part("image", png_part());

    let response = client()
        .post(format!("{}/send/image", sim.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Message");
    let request = &sim.requests_to("/send/image")[0];
    let fields = request.form.as_ref().expect("multipart fields recorded");
    assert_eq!(fields["phone"], PHONE);
    assert_eq!(fields["caption"], "Receipt");
    assert!(
        !fields.contains_key("image"),
        "file parts are not text fields"
    );
    assert_eq!(request.files.len(), 1);
    let file = &request.files[0];
    assert_eq!(file.name, "image");
    assert_eq!(file.filename.as_deref(), Some("receipt.png"));
    assert_eq!(file.content_type.as_deref(), Some("image/png"));
    assert_eq!(file.size, 8);
    assert!(
        request
            .content_type
            .as_deref()
            .unwrap()
            .starts_with("multipart/form-data")
    );
}

#[tokio::test]
async fn send_image_with_image_url_as_json_succeeds() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/image", sim.base_url()))
        .json(&json!({"phone": PHONE, "image_url": "https://example.com/receipt.jpg", "caption": "Receipt"}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Message");
    let sent = sim.requests()[0].json.clone().unwrap();
    assert_eq!(sent["image_url"], "https://example.com/receipt.jpg");
}

#[tokio::test]
async fn send_image_with_image_url_as_multipart_succeeds() {
    let sim = default_sim().await;
    let form = Form::new()
        .text("phone", PHONE)
        .text("image_url", "https://example.com/receipt.jpg");

    let response = client()
        .post(format!("{}/send/image", sim.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Message");
    assert!(sim.requests()[0].files.is_empty());
}

#[tokio::test]
async fn send_file_as_multipart_file_answers_document_sent() {
    let sim = default_sim().await;
    let part = Part::bytes(b"%PDF-1.4 invoice".to_vec())
        .file_name("invoice.pdf")
        .mime_str("application/pdf")
        .unwrap();
    let form = Form::new().text("phone", PHONE).part("file", part);

    let response = client()
        .post(format!("{}/send/file", sim.base_url()))
        .multipart(form)
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Document");
    let file = &sim.requests_to("/send/file")[0].files[0];
    assert_eq!((file.name.as_str(), file.size), ("file", 16));
}

#[tokio::test]
async fn send_file_with_file_url_as_json_succeeds() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/file", sim.base_url()))
        .json(&json!({"phone": PHONE_JID, "file_url": "https://example.com/invoice.pdf"}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    assert_send_success(&body, "Document");
}

#[tokio::test]
async fn every_send_gets_a_fresh_message_id() {
    let sim = default_sim().await;

    let (_, first) = status_and_json(send_text(&sim, PHONE, "one").await).await;
    let (_, second) = status_and_json(send_text(&sim, PHONE, "two").await).await;

    assert_ne!(
        first["results"]["message_id"],
        second["results"]["message_id"]
    );
}

#[tokio::test]
async fn phone_that_is_not_a_number_is_400_invalid_jid() {
    let sim = default_sim().await;

    let (status, body) = status_and_json(send_text(&sim, "not-a-phone", "hi").await).await;

    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "INVALID_JID", "message": "Phone not-a-phone@s.whatsapp.net is not on WhatsApp"})
    );
}

#[tokio::test]
async fn jid_without_user_is_400_your_jid_is_invalid() {
    let sim = default_sim().await;

    let (status, body) = status_and_json(send_text(&sim, "@s.whatsapp.net", "hi").await).await;

    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "INVALID_JID", "message": "your JID is invalid"})
    );
}

#[tokio::test]
async fn missing_phone_and_message_is_400_validation_error() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&json!({}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        json!({"code": "VALIDATION_ERROR", "message": "message: cannot be blank; phone: cannot be blank."})
    );
}

#[tokio::test]
async fn image_without_file_or_url_is_400_validation_error() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/image", sim.base_url()))
        .json(&json!({"phone": PHONE}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "VALIDATION_ERROR");
    assert_eq!(
        body["message"],
        "either Image (file), ImageURL, or ImagePath (base64) must be provided"
    );
}

#[tokio::test]
async fn local_format_number_is_400_validation_error() {
    let sim = default_sim().await;

    let (status, body) = status_and_json(send_text(&sim, "08123456789", "hi").await).await;

    assert_eq!(status, 400);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn logged_out_device_is_401_authentication_error() {
    let sim = default_sim().await;
    assert!(sim.set_device_state("demo", DeviceState::Connected));

    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;

    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": "AUTHENTICATION_ERROR", "message": MSG_NOT_LOGGED_IN})
    );
}

#[tokio::test]
async fn disconnected_device_is_401_authentication_error_asking_to_reconnect() {
    let sim = default_sim().await;
    sim.set_device_state("demo", DeviceState::Disconnected);

    let (status, body) = status_and_json(send_text(&sim, PHONE, "hi").await).await;

    assert_eq!(status, 401);
    assert_eq!(
        body,
        json!({"code": "AUTHENTICATION_ERROR", "message": MSG_NOT_CONNECTED})
    );
}

#[tokio::test]
async fn validation_comes_before_the_login_check() {
    let sim = default_sim().await;
    sim.set_device_state("demo", DeviceState::Connected);

    let (status, body) = status_and_json(send_text(&sim, "", "hi").await).await;

    assert_eq!(status, 400);
    assert_eq!(body["code"], "VALIDATION_ERROR");
}

#[tokio::test]
async fn malformed_json_is_500_like_gowas_body_parser() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 500);
    assert_eq!(body["code"], "INTERNAL_SERVER_ERROR");
    let recorded = &sim.requests()[0];
    assert!(recorded.json.is_none());
    assert_eq!(recorded.status, Some(500));
}

#[tokio::test]
async fn phone_of_the_wrong_json_type_is_500_with_gos_unmarshal_error() {
    let sim = default_sim().await;

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&json!({"phone": 6289685028129_u64, "message": "hi"}))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "json: cannot unmarshal number into Go struct field MessageRequest.phone of type string"
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413_and_still_recorded() {
    let sim = gowa_sim::start(gowa_sim::SimConfig {
        max_body_bytes: 16,
        ..gowa_sim::SimConfig::default()
    })
    .await
    .unwrap();

    let response = client()
        .post(format!("{}/send/message", sim.base_url()))
        .json(&json!({"phone": PHONE, "message": "a message longer than sixteen bytes"}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 413);
    assert_eq!(response.text().await.unwrap(), "Request Entity Too Large");
    assert_eq!(sim.requests_to("/send/message")[0].status, Some(413));
}
