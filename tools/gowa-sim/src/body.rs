//! Request bodies as GOWA's `BodyParser` sees them: JSON, multipart or URL-encoded forms.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::request::Parts;
use serde_json::Value;

use crate::state::RecordedFile;

/// A buffered request body, parsed once by the recording middleware and shared with handlers
/// through a request extension.
#[derive(Clone, Debug)]
pub(crate) struct ParsedBody {
    pub kind: BodyKind,
    pub size: usize,
}

#[derive(Clone, Debug)]
pub(crate) enum BodyKind {
    /// `Content-Type` ending in `json`, parsed.
    Json(Value),
    /// Multipart or URL-encoded: first value of each text field, and the file parts.
    Form {
        fields: BTreeMap<String, String>,
        files: Vec<RecordedFile>,
    },
    /// A JSON, multipart or form body that does not parse; the parser's message.
    Invalid(String),
    /// No `Content-Type`, or one GOWA's body parser does not handle.
    Unsupported,
}

enum Flavour {
    Json,
    UrlEncoded,
    Multipart,
    Other,
}

fn flavour(content_type: Option<&str>) -> Flavour {
    let Some(content_type) = content_type else {
        return Flavour::Other;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence.ends_with("json") {
        Flavour::Json
    } else if essence == "application/x-www-form-urlencoded" {
        Flavour::UrlEncoded
    } else if essence == "multipart/form-data" {
        Flavour::Multipart
    } else {
        Flavour::Other
    }
}

/// Parses `bytes` according to the request's `Content-Type`. `parts` are the request's own
/// head, reused to run axum's multipart parser over the buffered bytes.
pub(crate) async fn parse(parts: &Parts, bytes: &Bytes) -> ParsedBody {
    let content_type = parts
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let kind = match flavour(content_type) {
        Flavour::Json => match serde_json::from_slice::<Value>(bytes) {
            Ok(value) => BodyKind::Json(value),
            Err(err) => BodyKind::Invalid(err.to_string()),
        },
        Flavour::UrlEncoded => {
            let mut fields = BTreeMap::new();
            for (key, value) in url::form_urlencoded::parse(bytes) {
                fields
                    .entry(key.into_owned())
                    .or_insert_with(|| value.into_owned());
            }
            BodyKind::Form {
                fields,
                files: Vec::new(),
            }
        }
        Flavour::Multipart => parse_multipart(parts, bytes)
            .await
            .unwrap_or_else(BodyKind::Invalid),
        Flavour::Other => BodyKind::Unsupported,
    };
    ParsedBody {
        kind,
        size: bytes.len(),
    }
}

async fn parse_multipart(parts: &Parts, bytes: &Bytes) -> Result<BodyKind, String> {
    let request = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let mut multipart = Multipart::from_request(request, &())
        .await
        .map_err(|err| err.body_text())?;
    let mut fields = BTreeMap::new();
    let mut files = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|err| err.body_text())?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(str::to_owned);
        let content_type = field.content_type().map(str::to_owned);
        let data = field.bytes().await.map_err(|err| err.body_text())?;
        if filename.is_some() {
            files.push(RecordedFile {
                name,
                filename,
                content_type,
                size: data.len(),
            });
        } else {
            fields
                .entry(name)
                .or_insert_with(|| String::from_utf8_lossy(&data).into_owned());
        }
    }
    Ok(BodyKind::Form { fields, files })
}

/// A typed view of a parsed body, with Go's binding errors for values of the wrong type.
pub(crate) struct Fields<'a> {
    body: &'a ParsedBody,
    /// Go type name used in binding errors, e.g. `MessageRequest`.
    go_type: &'static str,
}

/// Why a body could not be bound to GOWA's request struct; GOWA answers 500 for these.
pub(crate) struct BindError(pub String);

impl<'a> Fields<'a> {
    pub fn bind(body: &'a ParsedBody, go_type: &'static str) -> Result<Self, BindError> {
        match &body.kind {
            BodyKind::Json(Value::Object(_)) | BodyKind::Form { .. } => Ok(Self { body, go_type }),
            BodyKind::Json(other) => Err(BindError(format!(
                "json: cannot unmarshal {} into Go value of type send.{go_type}",
                go_kind(other)
            ))),
            BodyKind::Invalid(message) => Err(BindError(message.clone())),
            BodyKind::Unsupported => Err(BindError("Unprocessable Entity".to_owned())),
        }
    }

    /// A string field: `None` when absent or JSON `null`.
    pub fn text(&self, name: &str) -> Result<Option<String>, BindError> {
        match &self.body.kind {
            BodyKind::Json(Value::Object(map)) => match map.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(other) => Err(BindError(format!(
                    "json: cannot unmarshal {} into Go struct field {}.{name} of type string",
                    go_kind(other),
                    self.go_type
                ))),
            },
            BodyKind::Form { fields, .. } => Ok(fields.get(name).cloned()),
            _ => Ok(None),
        }
    }

    /// A file part of a multipart body.
    pub fn file(&self, name: &str) -> Option<&'a RecordedFile> {
        match &self.body.kind {
            BodyKind::Form { files, .. } => files.iter().find(|f| f.name == name),
            _ => None,
        }
    }
}

fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
