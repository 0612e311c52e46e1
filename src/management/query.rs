//! The query parameters of listings, as the management plugin reads them: `columns`
//! (comma-separated, dotted paths into nested objects), `sort` (a dotted path),
//! `sort_reverse`, and `page` / `page_size` (which turn the answer into a page object).

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::error::ApiError;

/// The largest page the plugin serves.
const MAX_PAGE_SIZE: usize = 500;

/// Applies the listing parameters to `items`.
pub(crate) fn listing(
    mut items: Vec<Value>,
    query: &HashMap<String, String>,
) -> Result<Value, ApiError> {
    if let Some(key) = query.get("sort").filter(|k| !k.is_empty()) {
        items.sort_by(|a, b| compare(lookup(a, key), lookup(b, key)));
    }
    if query.get("sort_reverse").is_some_and(|v| v == "true") {
        items.reverse();
    }
    let columns = query.get("columns").map(|c| columns(c));
    let select = |item: Value| match &columns {
        Some(columns) => pick(&item, columns),
        None => item,
    };
    if !query.contains_key("page") {
        return Ok(Value::Array(items.into_iter().map(select).collect()));
    }
    let page: usize = number(query, "page", 1)?;
    let page_size: usize = number(query, "page_size", 100)?;
    if page == 0 || page_size == 0 || page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page and page_size must be positive, page_size at most {MAX_PAGE_SIZE}"
        )));
    }
    let total = items.len();
    let page_count = total.div_ceil(page_size).max(1);
    if page > page_count {
        return Err(ApiError::bad_request(format!(
            "page out of range, page: {page} page size: {page_size}, len: {total}"
        )));
    }
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * page_size)
        .take(page_size)
        .map(select)
        .collect();
    Ok(json!({
        "filtered_count": total,
        "item_count": page_items.len(),
        "items": page_items,
        "page": page,
        "page_count": page_count,
        "page_size": page_size,
        "total_count": total,
    }))
}

/// Keeps only `columns` of a single object (for `GET` of one object with `columns`).
pub(crate) fn object(item: Value, query: &HashMap<String, String>) -> Value {
    match query.get("columns") {
        Some(c) => pick(&item, &columns(c)),
        None => item,
    }
}

fn columns(spec: &str) -> Vec<Vec<&str>> {
    spec.split(',')
        .filter(|c| !c.is_empty())
        .map(|c| c.split('.').collect())
        .collect()
}

fn number(query: &HashMap<String, String>, key: &str, default: usize) -> Result<usize, ApiError> {
    match query.get(key) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| ApiError::bad_request(format!("{key} must be an integer"))),
    }
}

/// The value at a dotted path.
fn lookup<'a>(item: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(item, |v, k| v.get(k))
}

/// Copies the values at `columns` into a new object of the same nesting.
fn pick(item: &Value, columns: &[Vec<&str>]) -> Value {
    let mut out = Map::new();
    for path in columns {
        let Some(value) = path.iter().try_fold(item, |v, k| v.get(*k)) else {
            continue;
        };
        let mut slot = &mut out;
        for (i, key) in path.iter().enumerate() {
            if i + 1 == path.len() {
                slot.insert((*key).to_owned(), value.clone());
            } else {
                let next = slot
                    .entry((*key).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = next else { break };
                slot = next;
            }
        }
    }
    Value::Object(out)
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn columns_pick_nested_paths() {
        let items = vec![json!({"name": "a", "messages": 2, "totals": {"q": 1, "x": 2}})];
        let out = listing(items, &query(&[("columns", "name,totals.q")])).expect("ok");
        assert_eq!(out, json!([{"name": "a", "totals": {"q": 1}}]));
    }

    #[test]
    fn sort_and_pages() {
        let items: Vec<Value> = (0..5)
            .map(|i| json!({"name": format!("q{i}"), "n": 5 - i}))
            .collect();
        let out = listing(items.clone(), &query(&[("sort", "n")])).expect("ok");
        assert_eq!(out[0]["name"], "q4");
        let out = listing(
            items.clone(),
            &query(&[("sort", "name"), ("sort_reverse", "true")]),
        )
        .expect("ok");
        assert_eq!(out[0]["name"], "q4");
        let page = listing(items, &query(&[("page", "2"), ("page_size", "2")])).expect("ok");
        assert_eq!(page["page_count"], 3);
        assert_eq!(page["items"][0]["name"], "q2");
        assert_eq!(page["total_count"], 5);
    }
}
