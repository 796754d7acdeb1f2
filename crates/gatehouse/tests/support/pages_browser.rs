//! A minimal browser for driving the hosted pages in tests: keeps cookies, never follows
//! redirects, and reads our forms' inputs. Include it with
//! `#[path = "support/pages_browser.rs"] mod browser;`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};

use crate::support::TestApp;

/// A minimal browser: keeps cookies, never follows redirects, reads forms.
pub struct Browser {
    pub http: reqwest::Client,
    pub base_url: String,
    pub cookies: BTreeMap<String, String>,
    pub accept_language: Option<String>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Browser {
    pub fn new(app: &TestApp) -> Browser {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build();
        Browser {
            http: http.unwrap(),
            base_url: app.base_url.clone(),
            cookies: BTreeMap::new(),
            accept_language: None,
        }
    }

    pub fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let mut request = request.header("cookie", self.cookie_header());
        if let Some(language) = &self.accept_language {
            request = request.header("accept-language", language);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        for set_cookie in headers.get_all(SET_COOKIE) {
            let text = set_cookie.to_str().unwrap();
            let (pair, attributes) = text.split_once(';').unwrap_or((text, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page { status, headers, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(format!("{}{path}", self.base_url));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self.http.post(format!("{}{path}", self.base_url)).form(fields);
        self.send(request).await
    }

    /// GETs `/login?…`, then submits its form with these credentials.
    pub async fn sign_in(&mut self, query: &str, identifier: &str, password: &str) -> Page {
        let form = self.get(&format!("/login{query}")).await;
        assert_eq!(form.status, StatusCode::OK, "{}", form.body);
        let mut fields = form.hidden_fields();
        fields.push(("identifier".into(), identifier.into()));
        fields.push(("password".into(), password.into()));
        let fields: Vec<(&str, &str)> =
            fields.iter().map(|(name, value)| (name.as_str(), value.as_str())).collect();
        self.post("/login", &fields).await
    }

    pub fn session_cookie(&self) -> Option<&String> {
        self.cookies.get("gatehouse_session")
    }
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers.get(LOCATION).map_or("", |value| value.to_str().unwrap())
    }

    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(SET_COOKIE)
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .find(|value| value.starts_with(&format!("{name}=")))
    }

    /// Every `<input>` tag's attributes.
    pub fn inputs(&self) -> Vec<BTreeMap<String, String>> {
        self.body
            .split("<input")
            .skip(1)
            .map(|rest| attributes(&rest[..rest.find('>').unwrap()]))
            .collect()
    }

    pub fn hidden_fields(&self) -> Vec<(String, String)> {
        self.inputs()
            .into_iter()
            .filter(|input| input.get("type").map(String::as_str) == Some("hidden"))
            .map(|input| (input["name"].clone(), input.get("value").cloned().unwrap_or_default()))
            .collect()
    }

    pub fn hidden(&self, name: &str) -> Option<String> {
        self.hidden_fields().into_iter().find(|(field, _)| field == name).map(|(_, value)| value)
    }

    /// The text of the `role="alert"` message, if any.
    pub fn alert(&self) -> Option<String> {
        let start = self.body.find("role=\"alert\"")?;
        let rest = &self.body[start..];
        let text = &rest[rest.find('>')? + 1..rest.find("</p>")?];
        Some(unescape(text))
    }
}

/// `name="value"` pairs and bare attributes of one tag (enough for our own templates).
pub fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut rest = tag.trim();
    while !rest.is_empty() {
        let name_end = rest.find(|c: char| c == '=' || c.is_whitespace()).unwrap_or(rest.len());
        let name = rest[..name_end].to_owned();
        rest = &rest[name_end..];
        if let Some(after) = rest.strip_prefix("=\"") {
            let end = after.find('"').unwrap();
            found.insert(name, unescape(&after[..end]));
            rest = &after[end + 1..];
        } else {
            found.insert(name, String::new());
        }
        rest = rest.trim_start();
    }
    found
}

pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encodes everything but unreserved characters (for query values).
pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
