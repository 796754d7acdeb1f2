//! The browser the OAuth flow tests drive: a cookie jar, no automatic redirects, and reading hidden form
//! fields — enough to follow the hosted pages as a person would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

pub struct Browser {
    pub http: reqwest::Client,
    pub base_url: String,
    cookies: BTreeMap<String, String>,
}

pub struct Page {
    pub status: reqwest::StatusCode,
    pub location: Option<String>,
    /// The answer's `Retry-After`, if any.
    pub retry_after: Option<String>,
    pub body: String,
}

/// Undoes minijinja's HTML escaping of attribute values.
pub fn unescape(value: &str) -> String {
    value
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl Page {
    /// The value of the first input named `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\"");
        let start = self.body.find(&marker)?;
        let tag_start = self.body[..start].rfind('<')?;
        let tag_end = start + self.body[start..].find('>')?;
        let tag = &self.body[tag_start..tag_end];
        let value_start = tag.find("value=\"")? + "value=\"".len();
        let value_end = value_start + tag[value_start..].find('"')?;
        Some(unescape(&tag[value_start..value_end]))
    }
}

impl Browser {
    pub fn new(base_url: &str) -> Browser {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base_url: base_url.to_owned(), cookies: BTreeMap::new() }
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{location}", self.base_url)
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = text.to_ascii_lowercase().contains("max-age=0");
            if expired || value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let status = response.status();
        let location =
            response.headers().get("location").map(|value| value.to_str().unwrap().to_owned());
        let retry_after =
            response.headers().get("retry-after").map(|value| value.to_str().unwrap().to_owned());
        Page { status, location, retry_after, body: response.text().await.unwrap() }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let response = self
            .http
            .get(self.absolute(url))
            .header("cookie", self.cookie_header())
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let response = self
            .http
            .post(self.absolute(url))
            .header("cookie", self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.read(response).await
    }

    /// Follows same-origin redirects until a page, or a redirect leaving the server.
    pub async fn follow(&mut self, mut page: Page) -> Page {
        for _ in 0..10 {
            match &page.location {
                Some(location)
                    if location.starts_with('/') || location.starts_with(&self.base_url) =>
                {
                    let location = location.clone();
                    page = self.get(&location).await;
                }
                _ => return page,
            }
        }
        panic!("too many redirects");
    }

    /// Signs in on the login form that `page` shows; answers where the sign-in leads.
    pub async fn sign_in(&mut self, page: &Page, identifier: &str, password: &str) -> Page {
        assert!(page.body.contains("name=\"password\""), "not a login page:\n{}", page.body);
        let csrf = page.field("csrf_token").unwrap();
        let return_to = page.field("return_to").unwrap_or_default();
        let answer = self
            .post(
                "/login",
                &[
                    ("identifier", identifier),
                    ("password", password),
                    ("csrf_token", &csrf),
                    ("return_to", &return_to),
                ],
            )
            .await;
        self.follow(answer).await
    }

    /// Answers the consent form that `page` shows.
    pub async fn consent(&mut self, page: &Page, decision: &str) -> Page {
        let csrf = page.field("csrf_token").unwrap();
        let request = page.field("request").unwrap();
        self.post(
            "/consent",
            &[("request", &request), ("decision", decision), ("csrf_token", &csrf)],
        )
        .await
    }
}

/// The query parameters of a URL.
pub fn query(url: &str) -> BTreeMap<String, String> {
    let parsed = reqwest::Url::parse(url).unwrap();
    parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}
