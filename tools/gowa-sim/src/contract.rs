//! Contract checking: every request a simulator recorded, against the OpenAPI document of the
//! server it simulates (feature `contract`).
//!
//! For each recorded request the checker finds the operation (method and path template; a
//! template with more literal segments wins), then checks the path parameters, the query
//! (declared parameters against their schemas, required ones present, undeclared ones refused),
//! the declared header parameters, the security requirement (when the simulated server requires
//! credentials), the `Content-Type` against the documented media types, and the body against
//! the operation's schema (JSON as sent; multipart and URL-encoded forms as an object of their
//! fields, text values read as the schema's types, file parts as binary strings). Each problem
//! is one [`Violation`] naming the request, the operation and what is wrong.
//!
//! The documents (copied into `tests/fixtures/contracts/`, compiled in here):
//! - GOWA: go-whatsapp-web-multidevice's `docs/openapi.yaml` (OpenAPI 3.0; `nullable` is read as
//!   a `null` type);
//! - Meta: an extract of Meta's spec (OpenAPI 3.1) by `scripts/extract-meta-spec.py`;
//! - WAHA and Evolution: documents written from their docs and source.
//!
//! Except for Meta's (which closes its message objects itself), an object schema with
//! `properties` and no `additionalProperties` is read as closed: a field the document does not
//! list is reported, since a server ignores it silently. Values of credential headers are not
//! recorded (`Bearer ***`): their scheme and presence are checked, not the secret.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value, json};

use crate::SimHandle;
use crate::kind::Kind;
use crate::state::RecordedRequest;

const GOWA_SPEC: &str = include_str!("../../../tests/fixtures/contracts/gowa/openapi.yaml");
const WAHA_SPEC: &str = include_str!("../../../tests/fixtures/contracts/waha/openapi.yaml");
const EVOLUTION_SPEC: &str =
    include_str!("../../../tests/fixtures/contracts/evolution/openapi.yaml");
const META_SPEC: &str = include_str!("../../../tests/fixtures/contracts/meta/openapi.yaml");

/// What a violation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// No path template of the document matches the path.
    UnknownPath,
    /// The path exists, not with this method.
    MethodNotAllowed,
    /// A path parameter does not match its schema.
    PathParameter,
    /// A query parameter is missing, malformed or not documented.
    QueryParameter,
    /// A documented header is missing or malformed.
    Header,
    /// The credentials the operation requires were not sent, or in another scheme.
    Security,
    /// The `Content-Type` is not one the operation documents.
    ContentType,
    /// The body is missing, unreadable, undocumented or does not match its schema.
    Body,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::UnknownPath => "unknown path",
            Self::MethodNotAllowed => "method not allowed",
            Self::PathParameter => "path parameter",
            Self::QueryParameter => "query parameter",
            Self::Header => "header",
            Self::Security => "security",
            Self::ContentType => "content type",
            Self::Body => "body",
        })
    }
}

/// One way a recorded request breaks the contract.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The request's sequence number in the simulator's log.
    pub seq: u64,
    pub method: String,
    /// Path and query as received.
    pub target: String,
    /// The matched operation (`operationId`, or `METHOD template`).
    pub operation: Option<String>,
    pub rule: Rule,
    /// What is wrong, with the JSON pointer for body errors.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{} {} {}", self.seq, self.method, self.target)?;
        if let Some(op) = &self.operation {
            write!(f, " [{op}]")?;
        }
        write!(f, ": {}: {}", self.rule, self.detail)
    }
}

/// How strictly to check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckOptions {
    /// Require the operation's security scheme (off for a server run without credentials,
    /// which GOWA allows).
    pub enforce_security: bool,
}

#[derive(Debug)]
struct Operation {
    method: String,
    template: String,
    segments: Vec<Option<String>>,
    literals: usize,
    id: String,
    parameters: Vec<Value>,
    op: Value,
}

/// One server's OpenAPI document, ready to check requests against.
pub struct Contract {
    name: String,
    doc: Value,
    operations: Vec<Operation>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl fmt::Debug for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Contract")
            .field("name", &self.name)
            .field("operations", &self.operations.len())
            .finish()
    }
}

impl Contract {
    /// Reads an OpenAPI 3.0 or 3.1 document. With `closed_objects`, object schemas with
    /// `properties` and no `additionalProperties` refuse undocumented fields.
    pub fn from_yaml(name: &str, text: &str, closed_objects: bool) -> Result<Self, String> {
        let mut doc: Value =
            serde_yaml_ng::from_str(text).map_err(|e| format!("{name}: not YAML: {e}"))?;
        let v30 = doc
            .get("openapi")
            .and_then(Value::as_str)
            .is_some_and(|v| v.starts_with("3.0"));
        if v30 {
            oas30_to_json_schema(&mut doc);
        }
        if closed_objects {
            close_objects(&mut doc, false);
        }
        let mut operations = Vec::new();
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{name}: no paths"))?
            .clone();
        for (template, item) in &paths {
            let item = resolve(&doc, item).clone();
            let shared: Vec<Value> = item
                .get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                let Some(op) = item.get(method) else { continue };
                let mut parameters: Vec<Value> =
                    shared.iter().map(|p| resolve(&doc, p).clone()).collect();
                for p in op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let p = resolve(&doc, p).clone();
                    parameters.retain(|q| !(q["name"] == p["name"] && q["in"] == p["in"]));
                    parameters.push(p);
                }
                let segments: Vec<Option<String>> = template
                    .split('/')
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        if s.starts_with('{') && s.ends_with('}') {
                            None
                        } else {
                            Some(s.to_owned())
                        }
                    })
                    .collect();
                let literals = segments.iter().filter(|s| s.is_some()).count();
                let id = op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| format!("{} {template}", method.to_uppercase()));
                operations.push(Operation {
                    method: method.to_uppercase(),
                    template: template.clone(),
                    segments,
                    literals,
                    id,
                    parameters,
                    op: op.clone(),
                });
            }
        }
        operations.sort_by_key(|op| std::cmp::Reverse(op.literals));
        Ok(Self {
            name: name.to_owned(),
            doc,
            operations,
            validators: Mutex::new(HashMap::new()),
        })
    }

    /// GOWA v9.2's `docs/openapi.yaml`.
    pub fn gowa() -> &'static Contract {
        static SPEC: OnceLock<Contract> = OnceLock::new();
        SPEC.get_or_init(|| {
            Contract::from_yaml("gowa", GOWA_SPEC, true).expect("the GOWA spec reads")
        })
    }

    /// The WAHA routes document.
    pub fn waha() -> &'static Contract {
        static SPEC: OnceLock<Contract> = OnceLock::new();
        SPEC.get_or_init(|| {
            Contract::from_yaml("waha", WAHA_SPEC, true).expect("the WAHA spec reads")
        })
    }

    /// The Evolution API v2 routes document.
    pub fn evolution() -> &'static Contract {
        static SPEC: OnceLock<Contract> = OnceLock::new();
        SPEC.get_or_init(|| {
            Contract::from_yaml("evolution", EVOLUTION_SPEC, true)
                .expect("the Evolution spec reads")
        })
    }

    /// The extract of Meta's spec.
    pub fn meta() -> &'static Contract {
        static SPEC: OnceLock<Contract> = OnceLock::new();
        SPEC.get_or_init(|| {
            Contract::from_yaml("meta", META_SPEC, false).expect("the Meta spec reads")
        })
    }

    /// The document of `kind`.
    pub fn for_kind(kind: Kind) -> &'static Contract {
        match kind {
            Kind::Gowa => Self::gowa(),
            Kind::Waha => Self::waha(),
            Kind::Evolution => Self::evolution(),
            Kind::Meta => Self::meta(),
        }
    }

    /// The document's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parsed document (3.0 documents already read as JSON Schema).
    pub fn document(&self) -> &Value {
        &self.doc
    }

    /// Checks every request.
    pub fn check_all(&self, requests: &[RecordedRequest], options: CheckOptions) -> Vec<Violation> {
        requests
            .iter()
            .flat_map(|r| self.check(r, options))
            .collect()
    }

    /// Checks one request.
    ///
    /// GOWA's `GET /statics/...` (the QR picture behind the `qr_link` a login answered) is a
    /// static file the API links to, not an operation of the document: it is not checked.
    pub fn check(&self, request: &RecordedRequest, options: CheckOptions) -> Vec<Violation> {
        if self.name == "gowa"
            && request.method.eq_ignore_ascii_case("GET")
            && request.path.starts_with("/statics/")
        {
            return Vec::new();
        }
        let target = match &request.query {
            Some(q) => format!("{}?{q}", request.path),
            None => request.path.clone(),
        };
        let mut out = Vec::new();
        let mut violation = |operation: Option<&str>, rule: Rule, detail: String| {
            out.push(Violation {
                seq: request.seq,
                method: request.method.clone(),
                target: target.clone(),
                operation: operation.map(str::to_owned),
                rule,
                detail,
            });
        };
        let segments: Vec<String> = request
            .path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect();
        let matches: Vec<&Operation> = self
            .operations
            .iter()
            .filter(|op| {
                op.segments.len() == segments.len()
                    && op.segments.iter().zip(&segments).all(|(t, s)| match t {
                        Some(literal) => literal == s,
                        None => !s.is_empty(),
                    })
            })
            .collect();
        let Some(best) = matches.first().map(|op| op.literals) else {
            violation(
                None,
                Rule::UnknownPath,
                format!("no path of the {} document matches", self.name),
            );
            return out;
        };
        let same_template: Vec<&&Operation> =
            matches.iter().filter(|op| op.literals == best).collect();
        let Some(op) = same_template
            .iter()
            .find(|op| op.method == request.method.to_uppercase())
        else {
            let allowed: Vec<&str> = same_template.iter().map(|op| op.method.as_str()).collect();
            violation(
                None,
                Rule::MethodNotAllowed,
                format!(
                    "{} allows {}",
                    same_template[0].template,
                    allowed.join(", ")
                ),
            );
            return out;
        };
        let op_name = op.id.as_str();

        // Path parameters.
        let names: Vec<String> = op
            .template
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| s.trim_start_matches('{').trim_end_matches('}').to_owned())
            .collect();
        for ((template, value), name) in op.segments.iter().zip(&segments).zip(&names) {
            if template.is_some() {
                continue;
            }
            if let Some(param) = op
                .parameters
                .iter()
                .find(|p| p["in"] == "path" && p["name"] == *name)
            {
                for error in self.validate_param(op, param, value) {
                    violation(
                        Some(op_name),
                        Rule::PathParameter,
                        format!("{name} = {value:?}: {error}"),
                    );
                }
            }
        }

        // Query.
        let query: Vec<(String, String)> = request
            .query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for param in op.parameters.iter().filter(|p| p["in"] == "query") {
            let name = param["name"].as_str().unwrap_or_default();
            let values: Vec<&String> = query
                .iter()
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v)
                .collect();
            if values.is_empty() {
                if param["required"] == true {
                    violation(
                        Some(op_name),
                        Rule::QueryParameter,
                        format!("required {name} is missing"),
                    );
                }
                continue;
            }
            for value in values {
                for error in self.validate_param(op, param, value) {
                    violation(
                        Some(op_name),
                        Rule::QueryParameter,
                        format!("{name} = {value:?}: {error}"),
                    );
                }
            }
        }
        for (name, _) in &query {
            let documented = op
                .parameters
                .iter()
                .any(|p| p["in"] == "query" && p["name"] == *name)
                || self.security_query_names(op).contains(name);
            if !documented {
                violation(
                    Some(op_name),
                    Rule::QueryParameter,
                    format!("{name} is not documented"),
                );
            }
        }

        // Headers.
        for param in op.parameters.iter().filter(|p| p["in"] == "header") {
            let name = param["name"].as_str().unwrap_or_default();
            let Some(value) = request.header(name) else {
                if param["required"] == true {
                    violation(
                        Some(op_name),
                        Rule::Header,
                        format!("required {name} is missing"),
                    );
                }
                continue;
            };
            let value = if name.eq_ignore_ascii_case("content-type") {
                value
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            } else if name.eq_ignore_ascii_case("authorization") {
                // The credential is not recorded: check the scheme with a stand-in token.
                value.replace("***", "REDACTED0")
            } else {
                value.to_owned()
            };
            for error in self.validate_param(op, param, &value) {
                violation(Some(op_name), Rule::Header, format!("{name}: {error}"));
            }
        }

        // Security.
        if let Some(problem) = self.security_problem(op, request, options) {
            violation(Some(op_name), Rule::Security, problem);
        }

        // Body.
        for (rule, detail) in self.body_problems(op, request) {
            violation(Some(op_name), rule, detail);
        }
        out
    }

    fn validator(&self, key: String, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.validators.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache.get(&key) {
            return Ok(v.clone());
        }
        let root = json!({
            "$ref": "#/$defs/target",
            "$defs": {"target": schema},
            "components": self.doc.get("components").cloned().unwrap_or(Value::Null),
        });
        let validator = Arc::new(
            jsonschema::draft202012::new(&root)
                .map_err(|e| format!("schema does not compile: {e}"))?,
        );
        cache.insert(key, validator.clone());
        Ok(validator)
    }

    fn errors(&self, key: String, schema: &Value, instance: &Value) -> Vec<String> {
        match self.validator(key, schema) {
            Ok(validator) => validator
                .iter_errors(instance)
                .flat_map(|e| describe(&e))
                .collect(),
            Err(error) => vec![error],
        }
    }

    fn validate_param(&self, op: &Operation, param: &Value, raw: &str) -> Vec<String> {
        let Some(schema) = param.get("schema") else {
            return Vec::new();
        };
        let value = coerce(resolve(&self.doc, schema), raw, &self.doc);
        let key = format!(
            "{} {} param {} {}",
            op.method, op.template, param["in"], param["name"]
        );
        self.errors(key, schema, &value)
    }

    fn security_requirements(&self, op: &Operation) -> Vec<Map<String, Value>> {
        let security = op.op.get("security").or_else(|| self.doc.get("security"));
        security
            .and_then(Value::as_array)
            .map(|list| list.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default()
    }

    fn scheme(&self, name: &str) -> Value {
        self.doc
            .pointer(&format!("/components/securitySchemes/{name}"))
            .cloned()
            .unwrap_or(Value::Null)
    }

    fn security_query_names(&self, op: &Operation) -> Vec<String> {
        self.security_requirements(op)
            .iter()
            .flat_map(|r| r.keys().cloned().collect::<Vec<_>>())
            .filter_map(|name| {
                let scheme = self.scheme(&name);
                (scheme["type"] == "apiKey" && scheme["in"] == "query")
                    .then(|| scheme["name"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    fn security_problem(
        &self,
        op: &Operation,
        request: &RecordedRequest,
        options: CheckOptions,
    ) -> Option<String> {
        let requirements = self.security_requirements(op);
        if requirements.is_empty() {
            return None;
        }
        let authorization = request.header("authorization").map(str::to_owned);
        let sent_scheme = authorization
            .as_deref()
            .and_then(|v| v.split_whitespace().next())
            .map(str::to_ascii_lowercase);
        let satisfied = |name: &str| -> bool {
            let scheme = self.scheme(name);
            match (scheme["type"].as_str(), scheme["in"].as_str()) {
                (Some("http"), _) => {
                    let wanted = scheme["scheme"]
                        .as_str()
                        .unwrap_or_default()
                        .to_ascii_lowercase();
                    sent_scheme.as_deref() == Some(wanted.as_str())
                }
                (Some("apiKey"), Some("header")) => request
                    .header(scheme["name"].as_str().unwrap_or_default())
                    .is_some(),
                (Some("apiKey"), Some("query")) => request.query.as_deref().is_some_and(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .any(|(k, _)| k == scheme["name"].as_str().unwrap_or_default())
                }),
                _ => false,
            }
        };
        let ok = requirements
            .iter()
            .any(|r| r.keys().all(|name| satisfied(name)));
        // Credentials in a scheme the operation does not use are a mistake either way.
        if let Some(sent) = &sent_scheme {
            let http_schemes: Vec<String> = requirements
                .iter()
                .flat_map(|r| r.keys().cloned().collect::<Vec<_>>())
                .filter_map(|name| {
                    let scheme = self.scheme(&name);
                    (scheme["type"] == "http").then(|| {
                        scheme["scheme"]
                            .as_str()
                            .unwrap_or_default()
                            .to_ascii_lowercase()
                    })
                })
                .collect();
            let any_open = requirements.iter().any(Map::is_empty);
            if !http_schemes.is_empty() && !http_schemes.contains(sent) && !any_open {
                return Some(format!(
                    "Authorization uses {sent}, the operation takes {}",
                    http_schemes.join(" or ")
                ));
            }
        }
        if ok || !options.enforce_security {
            return None;
        }
        let wanted: Vec<String> = requirements
            .iter()
            .map(|r| r.keys().cloned().collect::<Vec<_>>().join(" + "))
            .collect();
        Some(format!("no credentials for {}", wanted.join(" or ")))
    }

    fn body_problems(&self, op: &Operation, request: &RecordedRequest) -> Vec<(Rule, String)> {
        let mut out = Vec::new();
        let Some(body) = op.op.get("requestBody").map(|b| resolve(&self.doc, b)) else {
            if request.body_size > 0 {
                out.push((
                    Rule::Body,
                    format!(
                        "a body of {} bytes, but the operation takes none",
                        request.body_size
                    ),
                ));
            }
            return out;
        };
        if request.body_size == 0 {
            if body["required"] == true {
                out.push((Rule::Body, "the required body is missing".to_owned()));
            }
            return out;
        }
        let content = body
            .get("content")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let essence = request
            .content_type
            .as_deref()
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let media = content.keys().find(|k| {
            let k = k.to_ascii_lowercase();
            k == essence
                || (k.ends_with("/*") && essence.starts_with(k.trim_end_matches('*')))
                || k == "*/*"
        });
        let Some(media) = media else {
            out.push((
                Rule::ContentType,
                format!(
                    "{:?} is not one of {}",
                    request.content_type.as_deref().unwrap_or(""),
                    content.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
            return out;
        };
        if let Some(error) = &request.body_error {
            out.push((
                Rule::Body,
                format!("the {media} body does not parse: {error}"),
            ));
            return out;
        }
        let Some(schema) = content[media].get("schema") else {
            return out;
        };
        let instance = if let Some(json) = &request.json {
            json.clone()
        } else if let Some(form) = &request.form {
            let resolved = resolve(&self.doc, schema);
            let mut object = Map::new();
            for (name, text) in form {
                let property = resolved
                    .get("properties")
                    .and_then(|p| p.get(name))
                    .map(|p| resolve(&self.doc, p))
                    .cloned()
                    .unwrap_or(Value::Null);
                object.insert(name.clone(), coerce(&property, text, &self.doc));
            }
            for file in &request.files {
                object.insert(file.name.clone(), json!(format!("<{} bytes>", file.size)));
            }
            Value::Object(object)
        } else {
            out.push((
                Rule::Body,
                format!("a {media} body the simulator could not read"),
            ));
            return out;
        };
        let key = format!("{} {} body {media}", op.method, op.template);
        for error in self.errors(key, schema, &instance) {
            out.push((Rule::Body, error));
        }
        out
    }
}

/// An error in words, with where it is. A `oneOf`/`anyOf` that nothing fits is explained by
/// its nearest branch (the one with the fewest errors), e.g. the message schema whose `type`
/// matches.
fn describe(error: &jsonschema::ValidationError<'_>) -> Vec<String> {
    use jsonschema::error::ValidationErrorKind;
    let at = error.instance_path().to_string();
    let place = |text: String| {
        if at.is_empty() {
            text
        } else {
            format!("{text} (at {at})")
        }
    };
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context }
            if !context.is_empty() =>
        {
            let nearest = context
                .iter()
                .min_by_key(|branch| branch.len())
                .expect("not empty");
            nearest
                .iter()
                .flat_map(describe)
                .map(|inner| format!("no alternative fits; nearest: {inner}"))
                .collect()
        }
        _ => {
            let mut text = error.to_string();
            if text.len() > 300 {
                let mut cut = 300;
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                text.truncate(cut);
                text.push('…');
            }
            vec![place(text)]
        }
    }
}

/// A text value (query, header, form field) read as the schema's type.
fn coerce(schema: &Value, raw: &str, doc: &Value) -> Value {
    let schema = resolve(doc, schema);
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for t in &types {
        match *t {
            "integer" => {
                if let Ok(n) = raw.parse::<i64>() {
                    return json!(n);
                }
            }
            "number" => {
                if let Ok(n) = raw.parse::<f64>() {
                    return json!(n);
                }
            }
            "boolean" => match raw {
                "true" => return json!(true),
                "false" => return json!(false),
                _ => {}
            },
            _ => {}
        }
    }
    json!(raw)
}

fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut current = value;
    for _ in 0..16 {
        match current.get("$ref").and_then(Value::as_str) {
            Some(reference) if reference.starts_with("#/") => match doc.pointer(&reference[1..]) {
                Some(target) => current = target,
                None => return current,
            },
            _ => return current,
        }
    }
    current
}

/// OpenAPI 3.0 schema dialect → JSON Schema: `nullable: true` adds `null` to the type.
fn oas30_to_json_schema(node: &mut Value) {
    match node {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true)) {
                map.remove("nullable");
                match map.get("type").cloned() {
                    Some(Value::String(t)) => {
                        map.insert("type".into(), json!([t, "null"]));
                    }
                    Some(Value::Array(mut ts)) => {
                        ts.push(json!("null"));
                        map.insert("type".into(), Value::Array(ts));
                    }
                    _ => {}
                }
            }
            for value in map.values_mut() {
                oas30_to_json_schema(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(oas30_to_json_schema),
        _ => {}
    }
}

/// Closes object schemas: `properties` without `additionalProperties` (outside compositions)
/// gets `additionalProperties: false`.
fn close_objects(node: &mut Value, in_composition: bool) {
    match node {
        Value::Object(map) => {
            let composite = ["allOf", "oneOf", "anyOf"]
                .iter()
                .any(|k| map.contains_key(*k));
            let open = !map.contains_key("additionalProperties")
                && !map.contains_key("unevaluatedProperties")
                && !map.contains_key("patternProperties");
            if map.get("properties").is_some_and(Value::is_object)
                && open
                && !composite
                && !in_composition
            {
                map.insert("additionalProperties".into(), Value::Bool(false));
            }
            for (key, value) in map.iter_mut() {
                let member = matches!(key.as_str(), "allOf" | "oneOf" | "anyOf");
                match (member, value) {
                    (true, Value::Array(items)) => {
                        items.iter_mut().for_each(|i| close_objects(i, true))
                    }
                    (_, value) => close_objects(value, false),
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|i| close_objects(i, in_composition)),
        _ => {}
    }
}

fn percent_decode(segment: &str) -> String {
    crate::recording::percent_decode(segment)
}

/// The options a simulator's configuration calls for: security is enforced when the server
/// requires credentials (GOWA basic auth, the others' API key).
pub fn options_for(sim: &SimHandle) -> CheckOptions {
    let config = sim.config();
    CheckOptions {
        enforce_security: match config.kind {
            Kind::Gowa => config.basic_auth.is_some(),
            _ => config.api_key.is_some(),
        },
    }
}

/// Every violation in what `sim` has recorded so far, against its kind's document.
pub fn violations(sim: &SimHandle) -> Vec<Violation> {
    Contract::for_kind(sim.kind()).check_all(&sim.requests(), options_for(sim))
}

/// A readable report of `violations` (one line each).
pub fn report(contract: &str, violations: &[Violation]) -> String {
    let mut text = format!(
        "{} request(s) break the {contract} contract:\n",
        violations
            .iter()
            .map(|v| v.seq)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    for v in violations {
        text.push_str(&format!("  {v}\n"));
    }
    text
}

/// Panics with a report when any request `sim` recorded breaks its kind's contract.
#[track_caller]
pub fn assert_conforms(sim: &SimHandle) {
    let found = violations(sim);
    assert!(found.is_empty(), "{}", report(sim.kind().as_str(), &found));
}

/// Checks a simulator's requests when dropped (at the end of a test), unless the test is
/// already failing. Hold one beside the simulator: `let _contract = contract::guard(&sim);`.
#[must_use = "the check runs when the guard is dropped"]
pub struct Guard {
    log: crate::RequestLog,
    contract: &'static Contract,
    options: CheckOptions,
    label: String,
}

/// A [`Guard`] for `sim`.
pub fn guard(sim: &SimHandle) -> Guard {
    Guard {
        log: sim.log(),
        contract: Contract::for_kind(sim.kind()),
        options: options_for(sim),
        label: format!("{} simulator at {}", sim.kind(), sim.base_url()),
    }
}

impl Guard {
    /// Checks now (and leaves nothing for the drop).
    pub fn check(&self) -> Vec<Violation> {
        self.contract.check_all(&self.log.requests(), self.options)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return;
        }
        let found = self.check();
        if !found.is_empty() {
            panic!("{} ({})", report(self.contract.name(), &found), self.label);
        }
    }
}

/// A simulator whose recorded requests are checked against its contract when it is dropped
/// (at the end of a test) or shut down. It dereferences to the [`SimHandle`], so tests use it
/// as one.
pub struct Checked {
    sim: Option<SimHandle>,
    guard: Option<Guard>,
}

/// Wraps `sim` so that its requests are checked when it goes away.
pub fn checked(sim: SimHandle) -> Checked {
    Checked {
        guard: Some(guard(&sim)),
        sim: Some(sim),
    }
}

impl Checked {
    /// Checks the requests so far (panicking with a report on a violation), then stops the
    /// simulator and waits until its ports are closed.
    pub async fn shutdown(mut self) {
        if let Some(guard) = self.guard.take() {
            drop(guard);
        }
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
    }
}

impl std::ops::Deref for Checked {
    type Target = SimHandle;

    fn deref(&self) -> &SimHandle {
        self.sim.as_ref().expect("the simulator is running")
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        // The guard checks first (and panics on a violation unless already panicking).
        self.guard.take();
        self.sim.take();
    }
}

impl fmt::Debug for Checked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Checked").field("sim", &self.sim).finish()
    }
}

/// The documents' operation ids, by document (for tests of the documents themselves).
pub fn operations(contract: &Contract) -> BTreeMap<String, (String, String)> {
    contract
        .operations
        .iter()
        .map(|op| (op.id.clone(), (op.method.clone(), op.template.clone())))
        .collect()
}
