//! Query strings and form bodies, read once into name/value pairs, with bounds: a page's
//! input is small, and anything that does not parse is a 400 page, never a 500.

use axum::body::Body;
use futures_util::StreamExt;
use http::request::Parts;

use crate::errors::WebError;

/// Form bodies are short fields; an htpasswd file is not posted here.
const MAX_FORM: usize = 64 * 1024;
/// The longest value any field takes.
const MAX_VALUE: usize = 8 * 1024;

/// Name/value pairs from a query string or a form body.
#[derive(Debug, Default, Clone)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(text: &[u8]) -> Result<Fields, WebError> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(text)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs
            .iter()
            .any(|(k, v)| k.len() > 128 || v.len() > MAX_VALUE)
        {
            return Err(WebError::bad_request("a field is too long"));
        }
        Ok(Fields(pairs))
    }

    pub fn query(parts: &Parts) -> Result<Fields, WebError> {
        Fields::parse(parts.uri.query().unwrap_or_default().as_bytes())
    }

    pub async fn body(body: Body) -> Result<Fields, WebError> {
        let mut bytes = Vec::new();
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|_| WebError::bad_request("the form could not be read"))?;
            if bytes.len() + chunk.len() > MAX_FORM {
                return Err(WebError::bad_request("the form is too large"));
            }
            bytes.extend_from_slice(&chunk);
        }
        Fields::parse(&bytes)
    }

    /// The first value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, trimmed; `None` when absent or blank.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every value of `name` (checkbox groups).
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Whether a checkbox is ticked.
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("1" | "on" | "true"))
    }

    /// A page number: absent is 1; anything but 1..=max is a 400.
    pub fn page(&self, max: u64) -> Result<u64, WebError> {
        match self.get("page") {
            None | Some("") => Ok(1),
            Some(text) => match text.parse::<u64>() {
                Ok(n) if (1..=max).contains(&n) => Ok(n),
                _ => Err(WebError::bad_request(format!(
                    "the page number {text:?} is not a number from 1 to {max}"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_pages() {
        let fields = Fields::parse(b"q=a+b&page=3&signed=on&x=&x=2").unwrap();
        assert_eq!(fields.get("q"), Some("a b"));
        assert_eq!(fields.text("x"), None);
        assert_eq!(fields.all("x").collect::<Vec<_>>(), ["", "2"]);
        assert!(fields.flag("signed"));
        assert_eq!(fields.page(10).unwrap(), 3);
        for bad in [
            "page=0",
            "page=-1",
            "page=abc",
            "page=11",
            "page=99999999999999999999999",
        ] {
            assert!(
                Fields::parse(bad.as_bytes()).unwrap().page(10).is_err(),
                "{bad}"
            );
        }
        assert!(Fields::parse(format!("q={}", "a".repeat(9000)).as_bytes()).is_err());
    }
}
