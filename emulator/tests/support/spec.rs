//! A small OpenAPI 3.0 subset validator: checks recorded responses against the response schema the
//! spec declares for their operation and status (else `default`).
//!
//! Supported: `$ref`, `type`, `required`, `properties`, `additionalProperties`, `items`, `enum`,
//! `allOf`, `oneOf`, `anyOf`, `nullable`, `minimum`/`maximum`, `minLength`/`maxLength`,
//! `maxProperties`, `format: date-time` and `uuid` (loosely), and the id pattern `^[a-z0-9-]{1,60}$`.

use neon_emulator::{RecordedBody, RecordedExchange};
use serde_json::{Map, Value};

pub struct Spec {
    doc: Value,
}

const ID_PATTERN: &str = "^[a-z0-9-]{1,60}$";

fn yaml_to_json(y: serde_yaml::Value) -> Value {
    match y {
        serde_yaml::Value::Null => Value::Null,
        serde_yaml::Value::Bool(b) => Value::Bool(b),
        serde_yaml::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_yaml::Value::String(s) => Value::String(s),
        serde_yaml::Value::Sequence(seq) => {
            Value::Array(seq.into_iter().map(yaml_to_json).collect())
        }
        serde_yaml::Value::Mapping(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let key = match k {
                    serde_yaml::Value::String(s) => s,
                    serde_yaml::Value::Number(n) => n.to_string(),
                    serde_yaml::Value::Bool(b) => b.to_string(),
                    other => format!("{other:?}"),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        serde_yaml::Value::Tagged(t) => yaml_to_json(t.value),
    }
}

impl Spec {
    /// The spec shipped in `emulator/spec/`.
    pub fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/spec/neon-api-v2.yaml");
        let text = std::fs::read_to_string(path).expect("read the OpenAPI spec");
        let yaml: serde_yaml::Value = serde_yaml::from_str(&text).expect("parse the OpenAPI spec");
        Spec {
            doc: yaml_to_json(yaml),
        }
    }

    fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("only local $ref supported: {r}"));
            v = self
                .doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {r}"));
        }
        v
    }

    /// The spec path template matching a concrete path (without `/api/v2`); literal segments win.
    fn template_for(&self, path: &str) -> Option<&str> {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let paths = self.doc.get("paths")?.as_object()?;
        paths
            .keys()
            .filter_map(|t| {
                let tsegs: Vec<&str> = t.trim_matches('/').split('/').collect();
                if tsegs.len() != segs.len() {
                    return None;
                }
                let mut literal = 0;
                for (ts, s) in tsegs.iter().zip(&segs) {
                    if ts.starts_with('{') {
                        if s.is_empty() {
                            return None;
                        }
                    } else if ts == s {
                        literal += 1;
                    } else {
                        return None;
                    }
                }
                Some((literal, t.as_str()))
            })
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, t)| t)
    }

    /// Problems with one recorded exchange (empty when it matches the spec).
    pub fn check_exchange(&self, ex: &RecordedExchange) -> Vec<String> {
        let label = format!("{} {} -> {}", ex.method, ex.path, ex.status);
        let Some(rest) = ex.path.strip_prefix("/api/v2") else {
            return vec![format!("{label}: not under /api/v2")];
        };
        let Some(template) = self.template_for(rest) else {
            return vec![format!("{label}: no such path in the spec")];
        };
        let Some(op) = self.doc["paths"][template].get(ex.method.to_ascii_lowercase()) else {
            return vec![format!("{label}: method not in the spec for {template}")];
        };
        let responses = &op["responses"];
        let Some(response) = responses
            .get(ex.status.to_string())
            .or_else(|| responses.get("default"))
        else {
            return vec![format!("{label}: status not declared")];
        };
        let response = self.resolve(response);
        let schema = response.pointer("/content/application~1json/schema");
        let mut errors = Vec::new();
        match (&ex.body, schema) {
            (RecordedBody::Empty, None) => {}
            (RecordedBody::Empty, Some(_)) => {
                errors.push("empty body where JSON is declared".to_string())
            }
            (RecordedBody::Json(_), None) => {
                errors.push("a body where none is declared".to_string())
            }
            (RecordedBody::Json(v), Some(s)) => self.check(s, v, "$", &mut errors),
            // Injected non-JSON faults (e.g. a 524 page) are outside the contract on purpose.
            (RecordedBody::Text(_), _) if ex.fault.is_some() => {}
            (RecordedBody::Text(t), _) => errors.push(format!("non-JSON body: {t:.80}")),
        }
        errors
            .into_iter()
            .map(|e| format!("{label}: {e}"))
            .collect()
    }

    /// Validates `value` against `schema`, appending problems at JSON path `at`.
    pub fn check(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if value.is_null() && schema.get("nullable").and_then(Value::as_bool) == Some(true) {
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.check(s, value, at, errors);
            }
        }
        for (key, exactly_one) in [("oneOf", true), ("anyOf", false)] {
            if let Some(alts) = schema.get(key).and_then(Value::as_array) {
                let passing = alts
                    .iter()
                    .filter(|s| {
                        let mut e = Vec::new();
                        self.check(s, value, at, &mut e);
                        e.is_empty()
                    })
                    .count();
                if passing == 0 || (exactly_one && passing > 1) {
                    errors.push(format!("{at}: {passing} of the {key} alternatives match"));
                }
            }
        }
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                _ => true,
            };
            if !ok {
                errors.push(format!("{at}: expected {t}, got {value}"));
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            if !allowed.contains(value) {
                errors.push(format!("{at}: {value} not in enum {allowed:?}"));
            }
        }
        match value {
            Value::Object(obj) => self.check_object(schema, obj, at, errors),
            Value::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item_schema, item, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            Value::String(s) => check_string(schema, s, at, errors),
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(f64::NAN);
                if schema
                    .get("minimum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| x < m)
                {
                    errors.push(format!("{at}: {x} below minimum"));
                }
                if schema
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| x > m)
                {
                    errors.push(format!("{at}: {x} above maximum"));
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        obj: &Map<String, Value>,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(key) {
                    errors.push(format!("{at}: required property {key:?} missing"));
                }
            }
        }
        if schema
            .get("maxProperties")
            .and_then(Value::as_u64)
            .is_some_and(|m| obj.len() as u64 > m)
        {
            errors.push(format!("{at}: too many properties"));
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (key, v) in obj {
            let path = format!("{at}.{key}");
            match props.and_then(|p| p.get(key)) {
                Some(s) => self.check(s, v, &path, errors),
                None => {
                    if let Some(extra) =
                        schema.get("additionalProperties").filter(|s| s.is_object())
                    {
                        self.check(extra, v, &path, errors);
                    }
                }
            }
        }
    }
}

fn check_string(schema: &Value, s: &str, at: &str, errors: &mut Vec<String>) {
    let len = s.chars().count() as u64;
    if schema
        .get("minLength")
        .and_then(Value::as_u64)
        .is_some_and(|m| len < m)
    {
        errors.push(format!("{at}: shorter than minLength"));
    }
    if schema
        .get("maxLength")
        .and_then(Value::as_u64)
        .is_some_and(|m| len > m)
    {
        errors.push(format!("{at}: longer than maxLength"));
    }
    match schema.get("format").and_then(Value::as_str) {
        Some("date-time") if chrono::DateTime::parse_from_rfc3339(s).is_err() => {
            errors.push(format!("{at}: {s:?} is not an RFC 3339 date-time"));
        }
        Some("uuid") if !looks_like_uuid(s) => errors.push(format!("{at}: {s:?} is not a UUID")),
        _ => {}
    }
    if schema.get("pattern").and_then(Value::as_str) == Some(ID_PATTERN) {
        let ok = (1..=60).contains(&s.len())
            && s.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
        if !ok {
            errors.push(format!("{at}: {s:?} does not match {ID_PATTERN}"));
        }
    }
}

fn looks_like_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|c| c.is_ascii_hexdigit()))
}
