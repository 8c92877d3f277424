//! Reading `template.yaml` and evaluating the CloudFormation intrinsics the local stack needs.
//!
//! The YAML is turned into JSON in CloudFormation's long form: a short tag such as `!Sub "x"`
//! (which `serde_yaml_ng` hands over as a tagged value) becomes `{"Fn::Sub": "x"}`, `!Ref X`
//! becomes `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`. A [`Context`]
//! then evaluates `Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::Select`, `Fn::Split`,
//! `Fn::If`, `Fn::FindInMap`, `Fn::Base64` and the condition functions against the parameters'
//! values (their `Default` unless overridden), the pseudo parameters and the resources created
//! so far. Anything else (`Fn::ImportValue`, `Fn::GetAZs`, ...) is an error naming the intrinsic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use serde_json::{Map, Value as Json};

/// One resource of the template, in long form.
#[derive(Debug, Clone)]
pub struct Resource {
    /// `Type`, e.g. `AWS::SQS::Queue`.
    pub kind: String,
    /// `Properties` (empty when absent).
    pub properties: Map<String, Json>,
    /// `Condition`: the resource exists only when it holds.
    pub condition: Option<String>,
    /// `DependsOn`.
    pub depends_on: Vec<String>,
    /// `Metadata` (empty when absent), e.g. SAM's `BuildProperties.Binary`.
    pub metadata: Map<String, Json>,
}

/// A parsed template.
#[derive(Debug, Clone, Default)]
pub struct Template {
    /// `Parameters`, as declared (`Type`, `Default`, ...).
    pub parameters: BTreeMap<String, Json>,
    /// `Mappings`.
    pub mappings: Map<String, Json>,
    /// `Conditions`.
    pub conditions: BTreeMap<String, Json>,
    /// `Globals` (SAM), e.g. `Globals.Function.Environment`.
    pub globals: Map<String, Json>,
    /// `Resources` by logical id.
    pub resources: BTreeMap<String, Resource>,
}

impl Template {
    /// Reads and parses a template file.
    pub fn load(path: &Path) -> anyhow::Result<Template> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading template {}", path.display()))?;
        Template::parse(&text).with_context(|| format!("parsing template {}", path.display()))
    }

    /// Parses template text (YAML or JSON).
    pub fn parse(text: &str) -> anyhow::Result<Template> {
        let yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text)?;
        let Json::Object(mut root) = yaml_to_json(yaml)? else {
            bail!("the template is not a mapping");
        };
        let mut take_map = |key: &str| -> anyhow::Result<Map<String, Json>> {
            match root.remove(key) {
                None | Some(Json::Null) => Ok(Map::new()),
                Some(Json::Object(map)) => Ok(map),
                Some(_) => bail!("`{key}` is not a mapping"),
            }
        };
        let parameters = take_map("Parameters")?.into_iter().collect();
        let mappings = take_map("Mappings")?;
        let conditions = take_map("Conditions")?.into_iter().collect();
        let globals = take_map("Globals")?;
        let mut resources = BTreeMap::new();
        for (id, definition) in take_map("Resources")? {
            let Json::Object(mut definition) = definition else {
                bail!("resource {id} is not a mapping");
            };
            let kind = match definition.remove("Type") {
                Some(Json::String(kind)) => kind,
                _ => bail!("resource {id} has no Type"),
            };
            let properties = match definition.remove("Properties") {
                None | Some(Json::Null) => Map::new(),
                Some(Json::Object(map)) => map,
                Some(_) => bail!("resource {id}: Properties is not a mapping"),
            };
            let metadata = match definition.remove("Metadata") {
                None | Some(Json::Null) => Map::new(),
                Some(Json::Object(map)) => map,
                Some(_) => bail!("resource {id}: Metadata is not a mapping"),
            };
            let condition = match definition.remove("Condition") {
                None => None,
                Some(Json::String(name)) => Some(name),
                Some(_) => bail!("resource {id}: Condition is not a name"),
            };
            let depends_on = match definition.remove("DependsOn") {
                None => Vec::new(),
                Some(Json::String(one)) => vec![one],
                Some(Json::Array(many)) => many
                    .into_iter()
                    .map(|v| match v {
                        Json::String(s) => Ok(s),
                        _ => Err(anyhow!("resource {id}: DependsOn holds a non-string")),
                    })
                    .collect::<anyhow::Result<_>>()?,
                Some(_) => bail!("resource {id}: DependsOn is neither a name nor a list"),
            };
            resources.insert(
                id,
                Resource {
                    kind,
                    properties,
                    condition,
                    depends_on,
                    metadata,
                },
            );
        }
        Ok(Template {
            parameters,
            mappings,
            conditions,
            globals,
            resources,
        })
    }

    /// The binary (SAM's `Metadata.BuildProperties.Binary`) of every function, in logical-id
    /// order; a function without one is an error.
    pub fn function_binaries(&self) -> anyhow::Result<Vec<String>> {
        self.resources
            .iter()
            .filter(|(_, r)| {
                matches!(
                    r.kind.as_str(),
                    "AWS::Serverless::Function" | "AWS::Lambda::Function"
                )
            })
            .map(|(id, r)| {
                r.metadata
                    .get("BuildProperties")
                    .and_then(|b| b.get("Binary"))
                    .and_then(Json::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow!("function {id} has no Metadata.BuildProperties.Binary"))
            })
            .collect()
    }

    /// The environment mapping of every function (`AWS::Serverless::Function` merged over
    /// `Globals.Function.Environment.Variables`, and `AWS::Lambda::Function`), by logical id.
    pub fn function_environments(&self) -> BTreeMap<String, Map<String, Json>> {
        let globals = self
            .globals
            .get("Function")
            .and_then(|f| env_variables(f.get("Environment")))
            .unwrap_or_default();
        let mut out = BTreeMap::new();
        for (id, resource) in &self.resources {
            let own = env_variables(resource.properties.get("Environment")).unwrap_or_default();
            let merged = match resource.kind.as_str() {
                "AWS::Serverless::Function" => {
                    let mut merged = globals.clone();
                    merged.extend(own);
                    merged
                }
                "AWS::Lambda::Function" => own,
                _ => continue,
            };
            out.insert(id.clone(), merged);
        }
        out
    }
}

fn env_variables(environment: Option<&Json>) -> Option<Map<String, Json>> {
    environment?.get("Variables")?.as_object().cloned()
}

/// Converts YAML into JSON, rewriting CloudFormation short-form tags into their long form.
pub fn yaml_to_json(value: serde_yaml_ng::Value) -> anyhow::Result<Json> {
    use serde_yaml_ng::Value as Y;
    Ok(match value {
        Y::Null => Json::Null,
        Y::Bool(b) => Json::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                Json::from(i)
            } else if let Some(u) = n.as_u64() {
                Json::from(u)
            } else {
                let f = n
                    .as_f64()
                    .ok_or_else(|| anyhow!("unrepresentable number {n}"))?;
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(|| anyhow!("unrepresentable number {n}"))?
            }
        }
        Y::String(s) => Json::String(s),
        Y::Sequence(items) => Json::Array(
            items
                .into_iter()
                .map(yaml_to_json)
                .collect::<anyhow::Result<_>>()?,
        ),
        Y::Mapping(mapping) => {
            let mut map = Map::new();
            for (key, value) in mapping {
                let key = match key {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => bail!("unsupported mapping key {other:?}"),
                };
                map.insert(key, yaml_to_json(value)?);
            }
            Json::Object(map)
        }
        Y::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let name = tag.trim_start_matches('!');
            let inner = yaml_to_json(tagged.value)?;
            let (key, inner) = match name {
                "Ref" => ("Ref".to_owned(), inner),
                "Condition" => ("Condition".to_owned(), inner),
                "GetAtt" => {
                    let inner = match inner {
                        Json::String(dotted) => {
                            let (id, attr) = dotted.split_once('.').ok_or_else(|| {
                                anyhow!("!GetAtt {dotted}: expected LogicalId.Attribute")
                            })?;
                            Json::Array(vec![Json::from(id), Json::from(attr)])
                        }
                        other => other,
                    };
                    ("Fn::GetAtt".to_owned(), inner)
                }
                other => (format!("Fn::{other}"), inner),
            };
            let mut map = Map::new();
            map.insert(key, inner);
            Json::Object(map)
        }
    })
}

/// What a created resource answers to `Ref` and `Fn::GetAtt`.
#[derive(Debug, Clone, Default)]
pub struct ResourceValues {
    /// The value of `Ref` (table name, queue URL, key id, alias name).
    pub reference: String,
    /// `Fn::GetAtt` attributes (`Arn`, `QueueName`, ...).
    pub attributes: BTreeMap<String, String>,
}

/// Evaluation context: parameters, pseudo parameters and the resources created so far.
#[derive(Debug)]
pub struct Context<'t> {
    template: &'t Template,
    /// `AWS::StackName`.
    pub stack_name: String,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`, once learned from an ARN the service returned.
    pub account_id: Option<String>,
    overrides: BTreeMap<String, String>,
    /// Created resources by logical id.
    pub resources: BTreeMap<String, ResourceValues>,
}

/// moto_server's default account, used for `AWS::AccountId` until an ARN tells the real one.
pub const MOTO_DEFAULT_ACCOUNT: &str = "123456789012";

impl<'t> Context<'t> {
    /// A context over `template` with parameter `overrides` (others take their `Default`).
    pub fn new(
        template: &'t Template,
        stack_name: &str,
        region: &str,
        overrides: BTreeMap<String, String>,
    ) -> anyhow::Result<Context<'t>> {
        for name in overrides.keys() {
            if !template.parameters.contains_key(name) {
                bail!("parameter {name} is not declared in the template");
            }
        }
        Ok(Context {
            template,
            stack_name: stack_name.to_owned(),
            region: region.to_owned(),
            account_id: None,
            overrides,
            resources: BTreeMap::new(),
        })
    }

    /// Notes the account id found in an ARN (`arn:partition:service:region:account:...`).
    pub fn learn_account_from_arn(&mut self, arn: &str) {
        if self.account_id.is_some() {
            return;
        }
        match arn.split(':').nth(4) {
            Some(account) if !account.is_empty() => self.account_id = Some(account.to_owned()),
            _ => {}
        }
    }

    fn account(&self) -> String {
        self.account_id
            .clone()
            .or_else(|| std::env::var("MOTO_ACCOUNT_ID").ok())
            .unwrap_or_else(|| MOTO_DEFAULT_ACCOUNT.to_owned())
    }

    /// Whether the named template condition holds.
    pub fn condition(&self, name: &str) -> anyhow::Result<bool> {
        self.condition_depth(name, 0)
    }

    fn condition_depth(&self, name: &str, depth: usize) -> anyhow::Result<bool> {
        if depth > 32 {
            bail!("condition {name}: nesting too deep (a cycle?)");
        }
        let definition = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| anyhow!("condition {name} is not declared"))?;
        self.eval_condition(definition, depth + 1)
            .with_context(|| format!("condition {name}"))
    }

    fn eval_condition(&self, value: &Json, depth: usize) -> anyhow::Result<bool> {
        let Some((function, argument)) = single_key(value) else {
            return match value {
                Json::Bool(b) => Ok(*b),
                Json::String(s) if s == "true" => Ok(true),
                Json::String(s) if s == "false" => Ok(false),
                other => bail!("not a condition: {other}"),
            };
        };
        let arguments = || {
            argument
                .as_array()
                .ok_or_else(|| anyhow!("{function} takes a list"))
        };
        match function {
            "Condition" => {
                let name = argument
                    .as_str()
                    .ok_or_else(|| anyhow!("Condition takes a name"))?;
                self.condition_depth(name, depth)
            }
            "Fn::Equals" => {
                let args = arguments()?;
                if args.len() != 2 {
                    bail!("Fn::Equals takes two values");
                }
                let left = self.eval(&args[0])?.map(|v| plain_string(&v)).transpose()?;
                let right = self.eval(&args[1])?.map(|v| plain_string(&v)).transpose()?;
                Ok(left == right)
            }
            "Fn::Not" => {
                let args = arguments()?;
                if args.len() != 1 {
                    bail!("Fn::Not takes one condition");
                }
                Ok(!self.eval_condition(&args[0], depth + 1)?)
            }
            "Fn::And" => {
                for arg in arguments()? {
                    if !self.eval_condition(arg, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for arg in arguments()? {
                    if self.eval_condition(arg, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            other => bail!("{other} is not a condition function"),
        }
    }

    /// Value of a parameter: override, else `Default`; list types become JSON arrays.
    fn parameter(&self, name: &str) -> anyhow::Result<Option<Json>> {
        let Some(declaration) = self.template.parameters.get(name) else {
            return Ok(None);
        };
        let raw = match self.overrides.get(name) {
            Some(value) => value.clone(),
            None => match declaration.get("Default") {
                Some(default) => plain_string(default)?,
                None => bail!(
                    "parameter {name} has no Default; give it a value (--parameter {name}=...)"
                ),
            },
        };
        let kind = declaration
            .get("Type")
            .and_then(Json::as_str)
            .unwrap_or("String");
        Ok(Some(
            if kind == "CommaDelimitedList" || kind.starts_with("List<") {
                Json::Array(
                    raw.split(',')
                        .map(|s| Json::from(s.trim().to_owned()))
                        .collect(),
                )
            } else {
                Json::String(raw)
            },
        ))
    }

    fn reference(&self, name: &str) -> anyhow::Result<Option<Json>> {
        Ok(Some(Json::String(match name {
            "AWS::StackName" => self.stack_name.clone(),
            "AWS::Region" => self.region.clone(),
            "AWS::AccountId" => self.account(),
            "AWS::Partition" => "aws".to_owned(),
            "AWS::URLSuffix" => "amazonaws.com".to_owned(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/local",
                self.region,
                self.account(),
                self.stack_name
            ),
            "AWS::NoValue" => return Ok(None),
            _ => {
                if let Some(value) = self.parameter(name)? {
                    return Ok(Some(value));
                }
                if let Some(resource) = self.resources.get(name) {
                    resource.reference.clone()
                } else if let Some(declared) = self.template.resources.get(name) {
                    bail!(
                        "Ref {name}: a {} is not created by the local stack (or not yet)",
                        declared.kind
                    );
                } else {
                    bail!("Ref {name}: no such parameter or resource");
                }
            }
        })))
    }

    fn attribute(&self, id: &str, attribute: &str) -> anyhow::Result<String> {
        if let Some(resource) = self.resources.get(id) {
            return resource
                .attributes
                .get(attribute)
                .cloned()
                .ok_or_else(|| anyhow!("Fn::GetAtt {id}.{attribute}: no such attribute locally"));
        }
        match self.template.resources.get(id) {
            Some(declared) => bail!(
                "Fn::GetAtt {id}.{attribute}: a {} is not created by the local stack (or not yet)",
                declared.kind
            ),
            None => bail!("Fn::GetAtt {id}.{attribute}: no such resource"),
        }
    }

    /// Evaluates every intrinsic in `value`. `None` means `AWS::NoValue` (the property is absent).
    pub fn eval(&self, value: &Json) -> anyhow::Result<Option<Json>> {
        match value {
            Json::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    if let Some(v) = self.eval(item)? {
                        out.push(v);
                    }
                }
                Ok(Some(Json::Array(out)))
            }
            Json::Object(map) => {
                if let Some((function, argument)) = single_key(value) {
                    if function == "Ref" || function.starts_with("Fn::") {
                        return self
                            .intrinsic(function, argument)
                            .with_context(|| format!("evaluating {function}"));
                    }
                }
                let mut out = Map::new();
                for (key, item) in map {
                    if let Some(v) = self.eval(item)? {
                        out.insert(key.clone(), v);
                    }
                }
                Ok(Some(Json::Object(out)))
            }
            scalar => Ok(Some(scalar.clone())),
        }
    }

    /// Evaluates `value` and requires a plain string.
    pub fn eval_string(&self, value: &Json) -> anyhow::Result<String> {
        match self.eval(value)? {
            Some(v) => plain_string(&v),
            None => bail!("AWS::NoValue where a value is required"),
        }
    }

    fn intrinsic(&self, function: &str, argument: &Json) -> anyhow::Result<Option<Json>> {
        let list = |n: usize| -> anyhow::Result<&Vec<Json>> {
            match argument.as_array() {
                Some(items) if items.len() == n => Ok(items),
                _ => bail!("{function} takes a list of {n}"),
            }
        };
        match function {
            "Ref" => {
                let name = argument
                    .as_str()
                    .ok_or_else(|| anyhow!("Ref takes a name"))?;
                self.reference(name)
            }
            "Fn::GetAtt" => {
                let (id, attribute) = match argument {
                    Json::String(dotted) => dotted
                        .split_once('.')
                        .map(|(a, b)| (a.to_owned(), b.to_owned()))
                        .ok_or_else(|| anyhow!("expected LogicalId.Attribute"))?,
                    Json::Array(items) if items.len() == 2 => {
                        (self.eval_string(&items[0])?, self.eval_string(&items[1])?)
                    }
                    _ => bail!("Fn::GetAtt takes [LogicalId, Attribute]"),
                };
                Ok(Some(Json::String(self.attribute(&id, &attribute)?)))
            }
            "Fn::Sub" => {
                let (text, variables) = match argument {
                    Json::String(text) => (text.as_str(), Map::new()),
                    Json::Array(items) if items.len() == 2 => {
                        let text = items[0]
                            .as_str()
                            .ok_or_else(|| anyhow!("Fn::Sub template is not a string"))?;
                        let variables = match self.eval(&items[1])? {
                            Some(Json::Object(map)) => map,
                            _ => bail!("Fn::Sub variables are not a mapping"),
                        };
                        (text, variables)
                    }
                    _ => bail!("Fn::Sub takes a string or [string, variables]"),
                };
                Ok(Some(Json::String(self.substitute(text, &variables)?)))
            }
            "Fn::Join" => {
                let items = list(2)?;
                let delimiter = self.eval_string(&items[0])?;
                let parts = match self.eval(&items[1])? {
                    Some(Json::Array(parts)) => parts,
                    _ => bail!("Fn::Join takes a list to join"),
                };
                let parts = parts
                    .iter()
                    .map(plain_string)
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Ok(Some(Json::String(parts.join(&delimiter))))
            }
            "Fn::Select" => {
                let items = list(2)?;
                let index: usize = self.eval_string(&items[0])?.parse()?;
                match self.eval(&items[1])? {
                    Some(Json::Array(values)) => values
                        .get(index)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| anyhow!("Fn::Select index {index} out of range")),
                    _ => bail!("Fn::Select takes a list"),
                }
            }
            "Fn::Split" => {
                let items = list(2)?;
                let delimiter = self.eval_string(&items[0])?;
                let text = self.eval_string(&items[1])?;
                Ok(Some(Json::Array(
                    text.split(delimiter.as_str()).map(Json::from).collect(),
                )))
            }
            "Fn::If" => {
                let items = list(3)?;
                let name = items[0]
                    .as_str()
                    .ok_or_else(|| anyhow!("Fn::If takes a condition name"))?;
                if self.condition(name)? {
                    self.eval(&items[1])
                } else {
                    self.eval(&items[2])
                }
            }
            "Fn::FindInMap" => {
                let items = list(3)?;
                let map = self.eval_string(&items[0])?;
                let top = self.eval_string(&items[1])?;
                let second = self.eval_string(&items[2])?;
                self.template
                    .mappings
                    .get(&map)
                    .and_then(|m| m.get(&top))
                    .and_then(|m| m.get(&second))
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| anyhow!("Fn::FindInMap {map}.{top}.{second}: not found"))
            }
            "Fn::Base64" => {
                let text = self.eval_string(argument)?;
                Ok(Some(Json::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            other => bail!("{other} is not supported by the local stack"),
        }
    }

    fn substitute(&self, text: &str, variables: &Map<String, Json>) -> anyhow::Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| anyhow!("unclosed ${{ in Fn::Sub {text:?}"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.get(name) {
                out.push_str(&plain_string(value)?);
            } else if let Some((id, attribute)) = name.split_once('.') {
                out.push_str(&self.attribute(id, attribute)?);
            } else {
                match self.reference(name)? {
                    Some(value) => out.push_str(&plain_string(&value)?),
                    None => bail!("AWS::NoValue inside Fn::Sub"),
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// `Some((key, value))` if `value` is a mapping with exactly one key.
fn single_key(value: &Json) -> Option<(&str, &Json)> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    map.iter().next().map(|(k, v)| (k.as_str(), v))
}

/// A scalar as CloudFormation's string form.
pub fn plain_string(value: &Json) -> anyhow::Result<String> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        other => bail!("expected a scalar, found {other}"),
    }
}

/// Logical ids of template resources that `value` refers to (`Ref`, `Fn::GetAtt`, `Fn::Sub`).
pub fn referenced_resources(template: &Template, value: &Json) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    collect_references(template, value, &mut out);
    out
}

fn collect_references(template: &Template, value: &Json, out: &mut BTreeSet<String>) {
    let mut note = |name: &str| {
        if template.resources.contains_key(name) {
            out.insert(name.to_owned());
        }
    };
    match value {
        Json::Array(items) => {
            for item in items {
                collect_references(template, item, out);
            }
        }
        Json::Object(map) => {
            if let Some((function, argument)) = single_key(value) {
                match (function, argument) {
                    ("Ref", Json::String(name)) => {
                        note(name);
                        return;
                    }
                    ("Fn::GetAtt", Json::String(dotted)) => {
                        note(dotted.split('.').next().unwrap_or_default());
                        return;
                    }
                    ("Fn::GetAtt", Json::Array(items)) => {
                        if let Some(Json::String(id)) = items.first() {
                            note(id);
                        }
                        return;
                    }
                    ("Fn::Sub", _) => {
                        let (text, variables) = match argument {
                            Json::String(text) => (text.as_str(), None),
                            Json::Array(items) if items.len() == 2 => {
                                (items[0].as_str().unwrap_or_default(), items[1].as_object())
                            }
                            _ => ("", None),
                        };
                        for name in sub_variables(text) {
                            if variables.is_some_and(|v| v.contains_key(&name)) {
                                continue;
                            }
                            note(name.split('.').next().unwrap_or_default());
                        }
                        if let Some(variables) = variables {
                            for v in variables.values() {
                                collect_references(template, v, out);
                            }
                        }
                        return;
                    }
                    _ => {}
                }
            }
            for item in map.values() {
                collect_references(template, item, out);
            }
        }
        _ => {}
    }
}

/// The `${...}` names in a `Fn::Sub` string (without `${!literal}`).
fn sub_variables(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.starts_with('!') {
            names.push(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SAMPLE: &str = r#"
Parameters:
  Stage:
    Type: String
    Default: dev
  Cidrs:
    Type: CommaDelimitedList
    Default: "10.0.0.0/8, 127.0.0.1/32"
  NoDefault:
    Type: String
Conditions:
  IsDev: !Equals [!Ref Stage, dev]
  NotDev: !Not [!Condition IsDev]
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-dlq"
  Main:
    Type: AWS::SQS::Queue
    DependsOn: Other
    Properties:
      QueueName: !Join ["-", [!Ref "AWS::StackName", main, !Ref Stage]]
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: 5
      Literal: !Sub "${!NotAVar}-${Dlq.Arn}"
      Maybe: !If [NotDev, yes, !Ref "AWS::NoValue"]
  Other:
    Type: AWS::SNS::Topic
"#;

    fn context(template: &Template) -> Context<'_> {
        let mut ctx = Context::new(template, "s1", "us-east-1", BTreeMap::new()).unwrap();
        ctx.resources.insert(
            "Dlq".into(),
            ResourceValues {
                reference: "http://q/s1-dlq".into(),
                attributes: [(
                    "Arn".to_owned(),
                    "arn:aws:sqs:us-east-1:1:s1-dlq".to_owned(),
                )]
                .into(),
            },
        );
        ctx
    }

    #[test]
    fn short_tags_become_long_form_intrinsics() {
        let template = Template::parse(SAMPLE).unwrap();
        let main = &template.resources["Main"].properties;
        assert_eq!(
            main["RedrivePolicy"]["deadLetterTargetArn"],
            json!({"Fn::GetAtt": ["Dlq", "Arn"]})
        );
        assert_eq!(
            template.resources["Dlq"].properties["QueueName"],
            json!({"Fn::Sub": "${AWS::StackName}-dlq"})
        );
        assert_eq!(template.resources["Main"].depends_on, vec!["Other"]);
    }

    #[test]
    fn evaluates_sub_join_getatt_if_and_novalue() {
        let template = Template::parse(SAMPLE).unwrap();
        let ctx = context(&template);
        let main = Json::Object(template.resources["Main"].properties.clone());
        let resolved = ctx.eval(&main).unwrap().unwrap();
        assert_eq!(resolved["QueueName"], json!("s1-main-dev"));
        assert_eq!(
            resolved["RedrivePolicy"]["deadLetterTargetArn"],
            json!("arn:aws:sqs:us-east-1:1:s1-dlq")
        );
        assert_eq!(
            resolved["Literal"],
            json!("${NotAVar}-arn:aws:sqs:us-east-1:1:s1-dlq")
        );
        assert!(resolved.get("Maybe").is_none(), "NoValue drops the key");
    }

    #[test]
    fn list_parameters_split_on_commas() {
        let template = Template::parse(SAMPLE).unwrap();
        let ctx = context(&template);
        assert_eq!(
            ctx.eval(&json!({"Ref": "Cidrs"})).unwrap().unwrap(),
            json!(["10.0.0.0/8", "127.0.0.1/32"])
        );
    }

    #[test]
    fn parameter_without_default_is_an_error_only_when_used() {
        let template = Template::parse(SAMPLE).unwrap();
        let ctx = context(&template);
        let err = ctx.eval(&json!({"Ref": "NoDefault"})).unwrap_err();
        assert!(format!("{err:#}").contains("no Default"), "{err:#}");
    }

    #[test]
    fn ref_to_a_resource_not_created_locally_names_its_type() {
        let template = Template::parse(SAMPLE).unwrap();
        let ctx = context(&template);
        let err = ctx.eval(&json!({"Ref": "Other"})).unwrap_err();
        assert!(format!("{err:#}").contains("AWS::SNS::Topic"), "{err:#}");
    }

    #[test]
    fn references_are_collected_from_ref_getatt_and_sub() {
        let template = Template::parse(SAMPLE).unwrap();
        let main = Json::Object(template.resources["Main"].properties.clone());
        let refs = referenced_resources(&template, &main);
        assert_eq!(refs.into_iter().collect::<Vec<_>>(), vec!["Dlq".to_owned()]);
    }

    #[test]
    fn every_function_of_the_workspace_template_names_its_binary() {
        let template = Template::load(&crate::workspace_template()).unwrap();
        assert_eq!(
            template.function_binaries().unwrap(),
            [
                "config-api",
                "health-check",
                "outbound-sender",
                "webhook-ingress"
            ]
        );
    }

    #[test]
    fn conditions_evaluate() {
        let template = Template::parse(SAMPLE).unwrap();
        let ctx = context(&template);
        assert!(ctx.condition("IsDev").unwrap());
        assert!(!ctx.condition("NotDev").unwrap());
    }
}
