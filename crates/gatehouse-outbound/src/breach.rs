//! The breached-password check over an HIBP-compatible k-anonymity range API, with a bounded
//! in-memory cache per hash prefix.
//!
//! Only the first five hex digits of the password's SHA-1 leave the process: the service
//! answers every suffix it knows under that prefix (padded with fake zero-count entries, so the
//! answer's size says nothing either) and the comparison happens here. SHA-1 is what the
//! protocol specifies; it is used for lookup, never to store or verify a password.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gatehouse_domain::passwords::BreachedPasswordCheck;
use gatehouse_domain::{Clock, SystemClock};
use sha1::{Digest as _, Sha1};

/// Have I Been Pwned's public Pwned Passwords API.
pub const DEFAULT_BASE_URL: &str = "https://api.pwnedpasswords.com";
/// Per-request timeout: sign-up waits for this at most before failing open.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many prefixes are cached. A prefix holds about a thousand suffixes of 18 bytes,
/// so a full cache is in the order of 200 MB; it only fills with this many distinct checks
/// within one `cache_ttl`.
pub const MAX_CACHED_PREFIXES: usize = 10_000;
/// Real padded answers are 30–40 KB; anything far larger is not a range answer.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
const PREFIX_HEX_DIGITS: usize = 5;
const SUFFIX_HEX_DIGITS: usize = 35;

/// A hash suffix (35 hex digits) packed into bytes, the last nibble zero.
type Suffix = [u8; 18];

/// A client of the HIBP range API: `GET {base_url}/range/{prefix}` with `Add-Padding: true`,
/// answered by `SUFFIX:COUNT` lines.
pub struct HibpClient {
    /// Without a trailing slash.
    base_url: String,
    http: reqwest::Client,
    timeout: Duration,
    cache_ttl: Duration,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, CachedRange>>,
}

/// The breached suffixes (count > 0) of one prefix, sorted for binary search.
struct CachedRange {
    fetched_at_millis: i64,
    breached_suffixes: Vec<Suffix>,
}

impl HibpClient {
    /// A client of the range API at `base_url` (http or https, e.g. [`DEFAULT_BASE_URL`]),
    /// giving up on a request after `timeout` and caching each prefix's answer for `cache_ttl`
    /// (zero disables the cache).
    pub fn new(
        base_url: &str,
        timeout: Duration,
        cache_ttl: Duration,
    ) -> Result<HibpClient, String> {
        let parsed = url::Url::parse(base_url)
            .map_err(|e| format!("breach check base URL is not a valid URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!(
                "breach check base URL must be http or https, not {}",
                parsed.scheme()
            ));
        }
        if parsed.cannot_be_a_base() || parsed.query().is_some() || parsed.fragment().is_some() {
            return Err("breach check base URL must not have a query or fragment".to_owned());
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent("gatehouse")
            .build()
            .map_err(|e| format!("breach check HTTP client: {e}"))?;
        Ok(HibpClient {
            base_url: parsed.as_str().trim_end_matches('/').to_owned(),
            http,
            timeout,
            cache_ttl,
            clock: Arc::new(SystemClock),
            cache: Mutex::default(),
        })
    }

    /// Replaces the clock that dates cache entries, so tests expire them without sleeping.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> HibpClient {
        self.clock = clock;
        self
    }

    /// The number of prefixes cached right now (fresh or not yet evicted).
    pub fn cached_prefixes(&self) -> usize {
        self.lock_cache().len()
    }

    /// `Some(breached)` when the prefix's answer is cached and fresh.
    fn cached(&self, prefix: &str, suffix: &Suffix) -> Option<bool> {
        let now = self.clock.now_millis();
        let cache = self.lock_cache();
        let range = cache.get(prefix).filter(|range| self.is_fresh(range, now))?;
        Some(range.breached_suffixes.binary_search(suffix).is_ok())
    }

    fn remember(&self, prefix: &str, breached_suffixes: Vec<Suffix>) {
        if self.cache_ttl.is_zero() {
            return;
        }
        let now = self.clock.now_millis();
        let mut cache = self.lock_cache();
        if cache.len() >= MAX_CACHED_PREFIXES && !cache.contains_key(prefix) {
            cache.retain(|_, range| self.is_fresh(range, now));
            // Still full of fresh entries: start again rather than track recency; a refill
            // costs one request per prefix.
            if cache.len() >= MAX_CACHED_PREFIXES {
                cache.clear();
            }
        }
        cache.insert(prefix.to_owned(), CachedRange { fetched_at_millis: now, breached_suffixes });
    }

    fn is_fresh(&self, range: &CachedRange, now_millis: i64) -> bool {
        let ttl_millis = i64::try_from(self.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        now_millis.saturating_sub(range.fetched_at_millis) < ttl_millis
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedRange>> {
        // The map is valid after any panic (every update is a single insert, retain or
        // clear), so a poisoned lock is still usable.
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The breached suffixes the service lists under `prefix`.
    async fn fetch_range(&self, prefix: &str) -> Result<Vec<Suffix>, String> {
        let url = format!("{}/range/{prefix}", self.base_url);
        let mut response = self
            .http
            .get(url)
            .header("Add-Padding", "true")
            .send()
            .await
            .map_err(|e| self.describe(e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("range API answered HTTP {}", status.as_u16()));
        }
        if response.content_length().is_some_and(|length| length > MAX_ANSWER_BYTES as u64) {
            return Err("range API answer is too large".to_owned());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.describe(e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err("range API answer is too large".to_owned());
            }
            body.extend_from_slice(&chunk);
        }
        let text =
            std::str::from_utf8(&body).map_err(|_| "range API answer is not UTF-8".to_owned())?;
        parse_range(text)
    }

    /// A reason without the URL, whose path carries the hash prefix.
    fn describe(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return format!("range API did not answer within {} ms", self.timeout.as_millis());
        }
        let error = error.without_url();
        let mut reason = format!("range API request failed: {error}");
        // reqwest's own message is generic ("error sending request"); the cause says why.
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            reason.push_str(": ");
            reason.push_str(&cause.to_string());
            source = cause.source();
        }
        reason
    }
}

#[async_trait::async_trait]
impl BreachedPasswordCheck for HibpClient {
    async fn is_breached(&self, password: &str) -> Result<bool, String> {
        let hash = sha1_upper_hex(password);
        let (prefix, suffix) = hash.split_at(PREFIX_HEX_DIGITS);
        let suffix = decode_suffix(suffix)
            .ok_or_else(|| "internal error: SHA-1 digest has an unexpected length".to_owned())?;
        if let Some(breached) = self.cached(prefix, &suffix) {
            return Ok(breached);
        }
        let breached_suffixes = self.fetch_range(prefix).await?;
        let breached = breached_suffixes.binary_search(&suffix).is_ok();
        self.remember(prefix, breached_suffixes);
        Ok(breached)
    }
}

impl fmt::Debug for HibpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HibpClient")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .field("cache_ttl", &self.cache_ttl)
            .field("cached_prefixes", &self.cached_prefixes())
            .finish_non_exhaustive()
    }
}

/// The breached suffixes of a range answer, sorted: lines `SUFFIX:COUNT` (LF or CRLF), where
/// padding lines have count 0 and are left out. A line that does not have this shape fails
/// the whole answer, so that an error page served with status 200 is not read as "not
/// breached" and cached.
fn parse_range(body: &str) -> Result<Vec<Suffix>, String> {
    let mut breached = Vec::new();
    for (index, line) in body.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let malformed = || format!("range API answer line {} is malformed", index + 1);
        let (suffix, count) = line.split_once(':').ok_or_else(malformed)?;
        let suffix = decode_suffix(suffix).ok_or_else(malformed)?;
        let count: u64 = count.trim().parse().map_err(|_| malformed())?;
        if count > 0 {
            breached.push(suffix);
        }
    }
    breached.sort_unstable();
    breached.dedup();
    Ok(breached)
}

/// Packs 35 hex digits (either case) into bytes; `None` for anything else.
fn decode_suffix(hex: &str) -> Option<Suffix> {
    if hex.len() != SUFFIX_HEX_DIGITS {
        return None;
    }
    let mut packed = [0u8; 18];
    for (index, digit) in hex.chars().enumerate() {
        let nibble = u8::try_from(digit.to_digit(16)?).ok()?;
        packed[index / 2] |= if index % 2 == 0 { nibble << 4 } else { nibble };
    }
    Some(packed)
}

/// The SHA-1 of the password's UTF-8 bytes as 40 uppercase hex digits, as the API expects.
fn sha1_upper_hex(password: &str) -> String {
    let digest = Sha1::digest(password.as_bytes());
    let mut hex = String::with_capacity(40);
    for byte in digest.iter() {
        // Writing to a String cannot fail.
        let _ = fmt::Write::write_fmt(&mut hex, format_args!("{byte:02X}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_published_example() {
        // The API documentation's example: "P@ssw0rd" is 21BD1 followed by 2DC18…A757.
        assert_eq!(sha1_upper_hex("P@ssw0rd"), "21BD12DC183F740EE76F27B78EB39C8AD972A757");
        assert_eq!(sha1_upper_hex("abc"), "A9993E364706816ABA3E25717850C26C9CD0D89D");
    }

    #[test]
    fn suffixes_decode_in_either_case_and_only_at_the_right_length() {
        let upper = decode_suffix("2DC183F740EE76F27B78EB39C8AD972A757").unwrap();
        assert_eq!(decode_suffix("2dc183f740ee76f27b78eb39c8ad972a757"), Some(upper));
        assert_eq!(upper[0], 0x2D);
        assert_eq!(upper[17], 0x70);
        assert_eq!(decode_suffix("2DC183F740EE76F27B78EB39C8AD972A75"), None);
        assert_eq!(decode_suffix("2DC183F740EE76F27B78EB39C8AD972A7570"), None);
        assert_eq!(decode_suffix("XDC183F740EE76F27B78EB39C8AD972A757"), None);
        assert_eq!(decode_suffix("éC183F740EE76F27B78EB39C8AD972A75"), None);
    }

    #[test]
    fn range_answers_parse_with_lf_or_crlf_and_skip_padding() {
        let a = "0018A45C4D1DEF81644B54AB7F969B88D65";
        let b = "00D4F6E8FA6EECAD2A3AA415EEC418D38EC";
        let padding = "011053FD0102E94D6AE2F8B83D76FAF94F6";
        let body = format!("{a}:1\r\n{b}:2\r\n{padding}:0\r\n");
        let expected = vec![decode_suffix(a).unwrap(), decode_suffix(b).unwrap()];
        assert_eq!(parse_range(&body).unwrap(), expected);
        assert_eq!(parse_range(&body.replace("\r\n", "\n")).unwrap(), expected);
        assert_eq!(parse_range("").unwrap(), Vec::<Suffix>::new());
        for bad in ["<html>oops</html>", "0018A45C4D1DEF81644B54AB7F969B88D65", "0018A45C:1"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base_url_must_be_http_or_https() {
        let ok = |url| HibpClient::new(url, DEFAULT_TIMEOUT, Duration::from_secs(60));
        assert_eq!(ok("https://api.pwnedpasswords.com/").unwrap().base_url, DEFAULT_BASE_URL);
        assert_eq!(
            ok("http://127.0.0.1:8080/hibp").unwrap().base_url,
            "http://127.0.0.1:8080/hibp"
        );
        for bad in ["ftp://example.com", "not a url", "mailto:x@example.com", "https://x.test/?a=1"]
        {
            assert!(ok(bad).is_err(), "{bad}");
        }
    }

    fn full_cache(clock: &Arc<gatehouse_domain::ManualClock>) -> HibpClient {
        let client = HibpClient::new(DEFAULT_BASE_URL, DEFAULT_TIMEOUT, Duration::from_secs(60))
            .unwrap()
            .with_clock(clock.clone());
        for index in 0..MAX_CACHED_PREFIXES {
            client.remember(&format!("{index:05X}"), Vec::new());
        }
        assert_eq!(client.cached_prefixes(), MAX_CACHED_PREFIXES);
        client
    }

    #[test]
    fn a_full_cache_evicts_expired_entries_first() {
        let clock = Arc::new(gatehouse_domain::ManualClock::new(1_000));
        let client = full_cache(&clock);
        // Refreshing a prefix already cached does not evict anything.
        client.remember("00000", Vec::new());
        assert_eq!(client.cached_prefixes(), MAX_CACHED_PREFIXES);

        clock.advance(61);
        for index in 0..MAX_CACHED_PREFIXES / 2 {
            client.remember(&format!("{index:05X}"), Vec::new());
        }
        client.remember("FFFFF", Vec::new());
        assert_eq!(client.cached_prefixes(), MAX_CACHED_PREFIXES / 2 + 1);
    }

    #[test]
    fn a_cache_full_of_fresh_entries_is_cleared() {
        let clock = Arc::new(gatehouse_domain::ManualClock::new(1_000));
        let client = full_cache(&clock);
        client.remember("FFFFF", Vec::new());
        assert_eq!(client.cached_prefixes(), 1);
    }

    #[test]
    fn a_zero_ttl_caches_nothing() {
        let client = HibpClient::new(DEFAULT_BASE_URL, DEFAULT_TIMEOUT, Duration::ZERO).unwrap();
        client.remember("ABCDE", Vec::new());
        assert_eq!(client.cached_prefixes(), 0);
    }
}
