//! List queries as Octavia takes them: attribute filters, `fields`, `limit` / `marker` paging,
//! `sort` / `sort_key` / `sort_dir`, and the `<kind>_links` with the next page.

use serde_json::{Map, Value, json};

use super::error::{ApiError, ApiResult};

/// Query parameters that are not attribute filters.
const CONTROL: &[&str] = &[
    "fields",
    "limit",
    "marker",
    "page_reverse",
    "sort",
    "sort_key",
    "sort_dir",
    "cascade",
    "not-tags",
    "not-tags-any",
    "tags-any",
];

#[derive(Debug, Default)]
pub struct ListQuery {
    /// Every parameter but `marker`, to carry into the next page's link.
    carried: Vec<(String, String)>,
    filters: Vec<(String, String)>,
    fields: Vec<String>,
    limit: Option<usize>,
    marker: Option<String>,
    sort: Vec<(String, bool)>,
    tags: Vec<String>,
}

impl ListQuery {
    pub fn parse(raw: Option<&str>) -> ApiResult<Self> {
        let mut query = ListQuery::default();
        let mut sort_keys = Vec::new();
        let mut sort_dirs = Vec::new();
        for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let (key, value) = (key.into_owned(), value.into_owned());
            if key != "marker" {
                query.carried.push((key.clone(), value.clone()));
            }
            match key.as_str() {
                "fields" => query.fields.extend(value.split(',').map(str::to_owned)),
                "limit" => {
                    let limit: usize = value.parse().map_err(|_| {
                        ApiError::bad_request(format!(
                            "limit must be a non-negative integer, got `{value}`"
                        ))
                    })?;
                    query.limit = Some(limit);
                }
                "marker" => query.marker = Some(value),
                "sort" => {
                    for part in value.split(',') {
                        let (field, dir) = part.split_once(':').unwrap_or((part, "asc"));
                        sort_keys.push(field.to_owned());
                        sort_dirs.push(dir.to_owned());
                    }
                }
                "sort_key" => sort_keys.push(value),
                "sort_dir" => sort_dirs.push(value),
                "tags" => query.tags.extend(value.split(',').map(str::to_owned)),
                other if CONTROL.contains(&other) => {}
                _ => query.filters.push((key, value)),
            }
        }
        for (i, key) in sort_keys.into_iter().enumerate() {
            let ascending = match sort_dirs.get(i).map(String::as_str).unwrap_or("asc") {
                "asc" => true,
                "desc" => false,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "sort direction `{other}` is not asc or desc"
                    )));
                }
            };
            query.sort.push((key, ascending));
        }
        Ok(query)
    }

    /// Filters, sorts, pages and projects `items` (views, already visible to the caller, in
    /// id order). The envelope is `{ kind: [...], "<kind>_links": [...] }`. Without `sort`,
    /// views are consumed one at a time and only the page is kept: `?limit=10` over 100,000
    /// load balancers holds ten views, not 100,000.
    pub fn respond(
        &self,
        kind: &str,
        base_url: &str,
        items: impl IntoIterator<Item = Value>,
    ) -> ApiResult<Value> {
        let mut items = items.into_iter().peekable();
        if let Some(first) = items.peek() {
            for (key, _) in &self.filters {
                if first.get(key).is_none() {
                    return Err(ApiError::bad_request(format!(
                        "`{key}` is not a filterable attribute of {kind}"
                    )));
                }
            }
        }
        let mut ordered: Box<dyn Iterator<Item = Value>> = if self.sort.is_empty() {
            Box::new(items)
        } else {
            let mut all: Vec<Value> = items.collect();
            all.sort_by(|a, b| {
                for (key, ascending) in &self.sort {
                    let order = compare(a.get(key), b.get(key));
                    let order = if *ascending { order } else { order.reverse() };
                    if order.is_ne() {
                        return order;
                    }
                }
                std::cmp::Ordering::Equal
            });
            Box::new(all.into_iter())
        };
        // The marker is a position in the sorted listing, whatever the filters.
        if let Some(marker) = &self.marker {
            let id = |item: &Value| item.get("id").and_then(Value::as_str) == Some(marker);
            if !ordered.by_ref().any(|item| id(&item)) {
                return Err(ApiError::not_found("Marker", marker));
            }
        }
        let wanted = |item: &Value| {
            self.filters
                .iter()
                .all(|(key, wanted)| matches(item.get(key), wanted))
                && self.tags.iter().all(|tag| {
                    item.get("tags")
                        .and_then(Value::as_array)
                        .is_some_and(|tags| tags.iter().any(|t| t.as_str() == Some(tag)))
                })
        };
        let limit = self.limit.filter(|l| *l > 0);
        let mut page = Vec::new();
        let mut more = false;
        for item in ordered.filter(wanted) {
            if limit.is_some_and(|limit| page.len() == limit) {
                more = true;
                break;
            }
            page.push(item);
        }
        let mut links = Vec::new();
        if more
            && let Some(last) = page
                .last()
                .and_then(|i| i.get("id"))
                .and_then(Value::as_str)
        {
            let query = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&self.carried)
                .append_pair("marker", last)
                .finish();
            links.push(json!({ "rel": "next", "href": format!("{base_url}?{query}") }));
        }
        if !self.fields.is_empty() {
            page = page.into_iter().map(|item| self.project(item)).collect();
        }
        let mut body = Map::new();
        body.insert(kind.to_owned(), Value::Array(page));
        body.insert(format!("{kind}_links"), Value::Array(links));
        Ok(Value::Object(body))
    }

    /// Whether `fields` asks for only some attributes.
    pub fn selects_fields(&self) -> bool {
        !self.fields.is_empty()
    }

    pub fn project(&self, item: Value) -> Value {
        if self.fields.is_empty() {
            return item;
        }
        match item {
            Value::Object(map) => Value::Object(
                map.into_iter()
                    .filter(|(key, _)| self.fields.iter().any(|f| f == key))
                    .collect(),
            ),
            other => other,
        }
    }
}

fn matches(value: Option<&Value>, wanted: &str) -> bool {
    match value {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Bool(b)) => wanted.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Some(Value::Number(n)) => n.to_string() == wanted,
        Some(Value::Null) => wanted.is_empty() || wanted == "null",
        _ => false,
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(x), Some(y)) => x.to_string().cmp(&y.to_string()),
        (a, b) => a.is_some().cmp(&b.is_some()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        (1..=5)
            .map(|i| json!({"id": format!("id-{i}"), "name": format!("n{}", i % 2), "admin_state_up": i != 3}))
            .collect()
    }

    #[test]
    fn filters_paging_and_fields() {
        let q = ListQuery::parse(Some("name=n1&limit=2&fields=id")).expect("parse");
        let body = q
            .respond("things", "http://h/v2/lbaas/things", items())
            .expect("respond");
        assert_eq!(body["things"], json!([{"id": "id-1"}, {"id": "id-3"}]));
        assert_eq!(
            body["things_links"][0]["href"],
            "http://h/v2/lbaas/things?name=n1&limit=2&fields=id&marker=id-3"
        );
        let q = ListQuery::parse(Some("marker=id-3&admin_state_up=true")).expect("parse");
        let body = q.respond("things", "x", items()).expect("respond");
        assert_eq!(body["things"].as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn bad_queries_are_400() {
        assert!(ListQuery::parse(Some("limit=-1")).is_err());
        assert!(ListQuery::parse(Some("sort=name:sideways")).is_err());
        let q = ListQuery::parse(Some("colour=red")).expect("parse");
        assert!(q.respond("things", "x", items()).is_err());
        let q = ListQuery::parse(Some("marker=nope")).expect("parse");
        assert!(q.respond("things", "x", items()).is_err());
    }
}
