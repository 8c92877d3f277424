//! CloudWatch Embedded Metric Format (EMF): one JSON log line that CloudWatch Logs turns into
//! metrics, no API call (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

/// The namespace every wagate metric goes to.
pub const NAMESPACE: &str = "wagate";

/// A metric's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// One EMF line: one dimension set, some metrics, some properties.
#[derive(Debug, Clone)]
pub struct EmfLine {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<(String, f64, Unit)>,
    properties: Vec<(String, Value)>,
}

impl EmfLine {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            dimensions: Vec::new(),
            metrics: Vec::new(),
            properties: Vec::new(),
        }
    }

    /// Adds a dimension (all dimensions form the line's one dimension set).
    pub fn dimension(mut self, name: &str, value: impl Into<String>) -> Self {
        self.dimensions.push((name.into(), value.into()));
        self
    }

    pub fn metric(mut self, name: &str, value: f64, unit: Unit) -> Self {
        self.metrics.push((name.into(), value, unit));
        self
    }

    /// A field searchable in Logs Insights, not a metric.
    pub fn property(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// The JSON line.
    pub fn render(&self, now: OffsetDateTime) -> String {
        let mut obj = Map::new();
        let dims: Vec<&str> = self.dimensions.iter().map(|(k, _)| k.as_str()).collect();
        let defs: Vec<Value> = self
            .metrics
            .iter()
            .map(|(name, _, unit)| json!({"Name": name, "Unit": unit.as_str()}))
            .collect();
        obj.insert(
            "_aws".into(),
            json!({
                "Timestamp": now.unix_timestamp() * 1000 + i64::from(now.millisecond()),
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [dims],
                    "Metrics": defs,
                }],
            }),
        );
        for (k, v) in &self.dimensions {
            obj.insert(k.clone(), v.clone().into());
        }
        for (k, v) in &self.properties {
            obj.insert(k.clone(), v.clone());
        }
        for (k, v, _) in &self.metrics {
            let n = if v.fract() == 0.0 && v.abs() < 9.0e15 {
                json!(*v as i64)
            } else {
                json!(v)
            };
            obj.insert(k.clone(), n);
        }
        Value::Object(obj).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_emf_envelope_with_dimensions_and_values() {
        let line = EmfLine::new(NAMESPACE)
            .dimension("Function", "health-check")
            .dimension("Endpoint", "http://wa.example.com")
            .metric("EndpointUp", 1.0, Unit::Count)
            .metric("ProbeLatency", 12.5, Unit::Milliseconds)
            .property("runId", "r1")
            .render(OffsetDateTime::from_unix_timestamp(2).unwrap());
        let v: Value = serde_json::from_str(&line).unwrap();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(v["_aws"]["Timestamp"], 2000);
        assert_eq!(cw["Namespace"], "wagate");
        assert_eq!(cw["Dimensions"], json!([["Function", "Endpoint"]]));
        assert_eq!(
            cw["Metrics"][1],
            json!({"Name": "ProbeLatency", "Unit": "Milliseconds"})
        );
        assert_eq!(v["Endpoint"], "http://wa.example.com");
        assert_eq!(v["EndpointUp"], 1);
        assert_eq!(v["ProbeLatency"], 12.5);
        assert_eq!(v["runId"], "r1");
    }
}
