//! The read cache of the hot paths: sessions, users, OAuth clients, access-token revocations
//! and API keys, kept in process memory so a bearer check, an introspection or a userinfo call
//! does not go to the database on every request; and the authorization codes this process
//! issued and has not seen spent, so a code exchange does not read back the row it wrote.
//!
//! Invariants:
//! - Off until the server turns it on ([`crate::Database::start_cache`]); the CLI and bare
//!   stores never cache.
//! - Every store write that changes a cached row names what it changed (an [`Invalidation`]).
//!   The entry is evicted in this process right after the commit; on PostgreSQL the same
//!   names travel to every other instance by `NOTIFY`, sent inside the write's transaction
//!   (so only committed changes are announced), and each instance's listener evicts them.
//! - A read that raced with an invalidation never stores its (possibly stale) answer: loads
//!   note the generation before reading and insert only if no invalidation happened since
//!   (checked under the map's lock, which invalidations take after bumping the generation).
//! - On PostgreSQL the cache is used only while the listener is connected; when it drops, the
//!   cache is emptied and bypassed until it listens again (missed notifications cannot leave
//!   stale entries behind). Entries also expire after a TTL, which bounds staleness from
//!   writers that cannot notify (another process writing the same SQLite file, e.g. the CLI).
//! - Absence is never cached: a row created elsewhere is found at once.
//! - Authorization codes are the exception to the rules above: a code's row changes only when
//!   it is spent, and the spend is a compare-and-set in the database (`used_at IS NULL`), so
//!   an entry can only be stale in saying "not spent yet" about a code another instance spent,
//!   and such an exchange fails at the spend. Every attempt to spend a code evicts it first
//!   ([`ReadCache::forget_code`]), so what an exchange reads after its attempt — a refused
//!   one looking for the session the first exchange issued, to revoke it — comes from the
//!   database.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gatehouse_domain::api_keys::ApiKeyRecord;
use gatehouse_domain::oauth::client::ClientRecord;
use gatehouse_domain::oauth::store::AuthorizationCodeRecord;
use gatehouse_domain::sessions::SessionRecord;
use gatehouse_domain::{StoreError, UserRecord};

use crate::Database;
use crate::columns::{StoreConnection, StoreQuery};

/// Inside a write's transaction, before its commit: announces what it changes to the other
/// instances (PostgreSQL `NOTIFY`, delivered only if the transaction commits). After the
/// commit [`ReadCache::invalidate`] evicts the same items in this process. Both are steps of
/// [`crate::database::write_transaction!`]: a write names what it changes in its `changed:`.
pub(crate) async fn announce<C: StoreConnection>(
    database: &Database,
    connection: &mut C,
    items: &[Invalidation<'_>],
) -> Result<(), StoreError> {
    if let Some(channel) = database.notify_channel() {
        let notify = C::statement("SELECT pg_notify($1, $2)");
        connection.execute(notify.bind_value(channel).bind_value(payload(items))).await?;
    }
    Ok(())
}

/// Entries per map before the map is emptied (a crude bound that keeps memory predictable).
const MAX_ENTRIES: usize = 100_000;

/// Authorization codes kept at most (each lives until its exchange, at most its lifetime);
/// an authorization that finds the map full is not kept, and its exchange reads the database.
const MAX_CODES: usize = 10_000;

/// Separates the items of one notification payload.
const SEPARATOR: char = '\u{1f}';

/// What a write changed, named so caches can drop it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Invalidation<'a> {
    Session(&'a str),
    User(&'a str),
    SessionsOfUser(&'a str),
    SessionsOfClient(&'a str),
    Client(&'a str),
    AccessToken(&'a str),
    /// An API key by id (revoked, or its use recorded).
    ApiKey(&'a str),
    /// Every key of an organization (the organization was deleted, its keys with it).
    ApiKeysOfOrganization(&'a str),
}

impl Invalidation<'_> {
    fn encode(&self, out: &mut String) {
        let (kind, key) = match self {
            Invalidation::Session(key) => ("s", key),
            Invalidation::User(key) => ("u", key),
            Invalidation::SessionsOfUser(key) => ("su", key),
            Invalidation::SessionsOfClient(key) => ("sc", key),
            Invalidation::Client(key) => ("c", key),
            Invalidation::AccessToken(key) => ("r", key),
            Invalidation::ApiKey(key) => ("k", key),
            Invalidation::ApiKeysOfOrganization(key) => ("ko", key),
        };
        if !out.is_empty() {
            out.push(SEPARATOR);
        }
        out.push_str(kind);
        out.push(':');
        out.push_str(key);
    }
}

/// The payload that names `items` (one `NOTIFY`, applied with [`ReadCache::apply`]).
/// What a write with a unit of work changes: what it names, plus the user and their sessions
/// when the work revokes sessions itself (a mailbox claim), so no write with such work can
/// forget them. Borrows `named` unless something is added.
pub(crate) fn with_work<'s, 'a>(
    named: &'s [Invalidation<'a>],
    work: &'a gatehouse_domain::unit_of_work::UnitOfWork,
) -> std::borrow::Cow<'s, [Invalidation<'a>]> {
    match work.revokes_sessions_of() {
        None => std::borrow::Cow::Borrowed(named),
        Some(user_id) => {
            let mut all = named.to_vec();
            all.extend([Invalidation::User(user_id), Invalidation::SessionsOfUser(user_id)]);
            std::borrow::Cow::Owned(all)
        }
    }
}

pub(crate) fn payload(items: &[Invalidation<'_>]) -> String {
    let mut out = String::new();
    for item in items {
        item.encode(&mut out);
    }
    out
}

struct Map<V> {
    entries: RwLock<HashMap<String, (V, Instant)>>,
}

impl<V: Clone> Map<V> {
    fn new() -> Self {
        Self { entries: RwLock::new(HashMap::new()) }
    }

    fn get(&self, key: &str, ttl: Duration) -> Option<V> {
        let entries = self.entries.read().ok()?;
        let (value, stored) = entries.get(key)?;
        (stored.elapsed() < ttl).then(|| value.clone())
    }

    fn remove(&self, key: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key);
        }
    }

    fn retain(&self, keep: impl Fn(&V) -> bool) {
        if let Ok(mut entries) = self.entries.write() {
            entries.retain(|_, (value, _)| keep(value));
        }
    }

    fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    fn len(&self) -> usize {
        self.entries.read().map_or(0, |entries| entries.len())
    }
}

/// The cache one [`crate::Database`] (and its clones) share.
pub struct ReadCache {
    enabled: AtomicBool,
    ttl_millis: AtomicU64,
    generation: AtomicU64,
    sessions: Map<SessionRecord>,
    users: Map<UserRecord>,
    clients: Map<ClientRecord>,
    revoked_tokens: Map<bool>,
    /// Keyed by the hex of the key's digest.
    api_keys: Map<ApiKeyRecord>,
    /// Authorization codes issued here and not spent, keyed by the hex of the code's digest.
    codes: Map<AuthorizationCodeRecord>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("enabled", &self.enabled.load(Ordering::Relaxed))
            .field("sessions", &self.sessions.len())
            .field("users", &self.users.len())
            .field("clients", &self.clients.len())
            .finish_non_exhaustive()
    }
}

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            ttl_millis: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            sessions: Map::new(),
            users: Map::new(),
            clients: Map::new(),
            revoked_tokens: Map::new(),
            api_keys: Map::new(),
            codes: Map::new(),
        }
    }
}

/// A load in progress: the generation it started from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load(Option<u64>);

impl ReadCache {
    pub(crate) fn set_ttl(&self, ttl: Duration) {
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.ttl_millis.store(millis, Ordering::Release);
    }

    /// Starts (`true`) or stops (`false`) serving from memory; both empty the cache (the
    /// flush's generation bump also refuses any load that was in flight across the switch).
    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Release);
        self.flush();
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn ttl(&self) -> Option<Duration> {
        if !self.is_enabled() {
            return None;
        }
        Some(Duration::from_millis(self.ttl_millis.load(Ordering::Acquire)))
    }

    /// Empties every map.
    pub(crate) fn flush(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.sessions.clear();
        self.users.clear();
        self.clients.clear();
        self.revoked_tokens.clear();
        self.api_keys.clear();
        self.codes.clear();
    }

    /// Notes the generation before a database read whose answer may be cached.
    pub(crate) fn begin_load(&self) -> Load {
        Load(self.is_enabled().then(|| self.generation.load(Ordering::Acquire)))
    }

    fn put<V: Clone>(&self, map: &Map<V>, load: Load, key: &str, value: V) {
        let Some(generation) = load.0 else { return };
        if !self.is_enabled() {
            return;
        }
        let Ok(mut entries) = map.entries.write() else { return };
        // Checked under the lock: an invalidation bumps the generation before it takes the
        // lock to evict, so either it sees this entry and removes it, or this sees its bump.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_owned(), (value, Instant::now()));
    }

    pub(crate) fn session(&self, id: &str) -> Option<SessionRecord> {
        self.sessions.get(id, self.ttl()?)
    }

    pub(crate) fn put_session(&self, load: Load, session: &SessionRecord) {
        self.put(&self.sessions, load, &session.id, session.clone());
    }

    pub(crate) fn user(&self, id: &str) -> Option<UserRecord> {
        self.users.get(id, self.ttl()?)
    }

    pub(crate) fn put_user(&self, load: Load, user: &UserRecord) {
        self.put(&self.users, load, &user.id, user.clone());
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<ClientRecord> {
        self.clients.get(client_id, self.ttl()?)
    }

    pub(crate) fn put_client(&self, load: Load, client: &ClientRecord) {
        self.put(&self.clients, load, &client.client_id, client.clone());
    }

    pub(crate) fn token_revoked(&self, jti: &str) -> Option<bool> {
        self.revoked_tokens.get(jti, self.ttl()?)
    }

    pub(crate) fn put_token_revoked(&self, load: Load, jti: &str, revoked: bool) {
        self.put(&self.revoked_tokens, load, jti, revoked);
    }

    pub(crate) fn api_key(&self, digest_hex: &str) -> Option<ApiKeyRecord> {
        self.api_keys.get(digest_hex, self.ttl()?)
    }

    pub(crate) fn put_api_key(&self, load: Load, digest_hex: &str, key: &ApiKeyRecord) {
        self.put(&self.api_keys, load, digest_hex, key.clone());
    }

    /// A code this process issued and has not tried to spend (see the module documentation).
    pub(crate) fn code(&self, digest: &[u8]) -> Option<AuthorizationCodeRecord> {
        self.codes.get(&hex(digest), self.ttl()?)
    }

    /// Keeps a code this process has just stored: nothing else changes its row but a spend,
    /// which evicts it first, so no load generation is checked.
    pub(crate) fn put_code(&self, code: &AuthorizationCodeRecord) {
        if !self.is_enabled() {
            return;
        }
        let Ok(mut entries) = self.codes.entries.write() else { return };
        if entries.len() < MAX_CODES {
            entries.insert(hex(&code.code_digest), (code.clone(), Instant::now()));
        }
    }

    /// Before an attempt to spend a code: whatever comes of it, the code is read from the
    /// database from now on.
    pub(crate) fn forget_code(&self, digest: &[u8]) {
        self.codes.remove(&hex(digest));
    }

    /// Evicts what `items` name (after this process committed them).
    pub(crate) fn invalidate(&self, items: &[Invalidation<'_>]) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for item in items {
            self.evict(*item);
        }
    }

    /// Evicts what a notification payload names (a commit of any instance).
    pub(crate) fn apply(&self, payload: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        for item in payload.split(SEPARATOR) {
            let Some((kind, key)) = item.split_once(':') else { continue };
            let item = match kind {
                "s" => Invalidation::Session(key),
                "u" => Invalidation::User(key),
                "su" => Invalidation::SessionsOfUser(key),
                "sc" => Invalidation::SessionsOfClient(key),
                "c" => Invalidation::Client(key),
                "r" => Invalidation::AccessToken(key),
                "k" => Invalidation::ApiKey(key),
                "ko" => Invalidation::ApiKeysOfOrganization(key),
                _ => {
                    // A newer instance's kind we don't know: be safe.
                    self.flush();
                    return;
                }
            };
            self.evict(item);
        }
    }

    fn evict(&self, item: Invalidation<'_>) {
        match item {
            Invalidation::Session(id) => self.sessions.remove(id),
            Invalidation::User(id) => self.users.remove(id),
            Invalidation::SessionsOfUser(user_id) => {
                self.sessions.retain(|session| session.user_id != user_id);
            }
            Invalidation::SessionsOfClient(client_id) => {
                self.sessions.retain(|session| session.client_id.as_deref() != Some(client_id));
            }
            Invalidation::Client(client_id) => self.clients.remove(client_id),
            Invalidation::AccessToken(jti) => self.revoked_tokens.remove(jti),
            Invalidation::ApiKey(id) => self.api_keys.retain(|key| key.id != id),
            Invalidation::ApiKeysOfOrganization(organization_id) => {
                self.api_keys.retain(|key| key.org_id() != Some(organization_id));
            }
        }
    }
}

/// A digest as the cache keys it (lower-case hex): API keys and authorization codes.
pub(crate) fn hex(digest: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> ReadCache {
        let cache = ReadCache::default();
        cache.set_ttl(Duration::from_secs(60));
        cache.set_enabled(true);
        cache
    }

    fn code(digest: &[u8]) -> AuthorizationCodeRecord {
        AuthorizationCodeRecord {
            code_digest: digest.to_vec(),
            client_id: "cli_1".into(),
            user_id: "usr_1".into(),
            browser_session_id: "ses_1".into(),
            redirect_uri: "https://app.example/cb".into(),
            scope: "openid".into(),
            nonce: None,
            code_challenge: None,
            auth_time: 1,
            created_at: 1,
            expires_at: 61,
            used_at: None,
            issued_session_id: None,
            amr: None,
            organization_id: None,
            dpop_jkt: None,
            resources: Vec::new(),
        }
    }

    #[test]
    fn a_code_is_kept_until_its_spend_is_tried_and_never_while_the_cache_is_off() {
        let off = ReadCache::default();
        off.put_code(&code(b"c1"));
        assert_eq!(off.code(b"c1"), None);

        let cache = enabled();
        cache.put_code(&code(b"c1"));
        assert_eq!(cache.code(b"c1"), Some(code(b"c1")));
        assert_eq!(cache.code(b"c2"), None);
        cache.forget_code(b"c1");
        assert_eq!(cache.code(b"c1"), None, "after an attempt to spend it, the database answers");

        // Bounded: past the limit new codes are not kept (their exchange reads the database).
        for n in 0..MAX_CODES + 10 {
            cache.put_code(&code(format!("n{n}").as_bytes()));
        }
        assert!(cache.code(b"n0").is_some());
        assert_eq!(cache.code(format!("n{}", MAX_CODES + 5).as_bytes()), None);
        cache.flush();
        assert_eq!(cache.code(b"n0"), None);
    }

    #[test]
    fn a_load_that_raced_with_an_invalidation_is_not_stored() {
        let cache = enabled();
        let load = cache.begin_load();
        cache.invalidate(&[Invalidation::AccessToken("jti-1")]);
        cache.put_token_revoked(load, "jti-1", false);
        assert_eq!(cache.token_revoked("jti-1"), None);

        let load = cache.begin_load();
        cache.put_token_revoked(load, "jti-1", false);
        assert_eq!(cache.token_revoked("jti-1"), Some(false));
    }

    #[test]
    fn a_payload_evicts_what_it_names_and_nothing_else() {
        let cache = enabled();
        for jti in ["a", "b", "c:d"] {
            cache.put_token_revoked(cache.begin_load(), jti, false);
        }
        cache.apply(&payload(&[Invalidation::AccessToken("a"), Invalidation::AccessToken("c:d")]));
        assert_eq!(cache.token_revoked("a"), None);
        assert_eq!(cache.token_revoked("b"), Some(false));
        assert_eq!(cache.token_revoked("c:d"), None);
    }

    #[test]
    fn a_disabled_cache_stores_and_answers_nothing() {
        let cache = ReadCache::default();
        cache.set_ttl(Duration::from_secs(60));
        cache.put_token_revoked(cache.begin_load(), "a", true);
        assert_eq!(cache.token_revoked("a"), None);
        let cache = enabled();
        cache.put_token_revoked(cache.begin_load(), "a", true);
        cache.set_enabled(false);
        assert_eq!(cache.token_revoked("a"), None);
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = enabled();
        cache.set_ttl(Duration::ZERO);
        cache.put_token_revoked(cache.begin_load(), "a", true);
        assert_eq!(cache.token_revoked("a"), None);
    }

    #[test]
    fn api_keys_are_evicted_by_id_and_by_organization() {
        use gatehouse_domain::api_keys::{ApiKeyOwner, ApiKeyRecord};
        let key = |id: &str, owner: ApiKeyOwner| ApiKeyRecord {
            id: id.into(),
            owner,
            created_by: "usr".into(),
            name: "k".into(),
            prefix: "gtk_".into(),
            key_digest: vec![],
            scopes: vec![],
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            acting_organization_id: None,
        };
        let cache = enabled();
        let keys = [
            ("d1", key("key_1", ApiKeyOwner::User("usr".into()))),
            ("d2", key("key_2", ApiKeyOwner::Organization("org_a".into()))),
            ("d3", key("key_3", ApiKeyOwner::Organization("org_b".into()))),
        ];
        for (digest, record) in &keys {
            cache.put_api_key(cache.begin_load(), digest, record);
        }
        cache.apply(&payload(&[Invalidation::ApiKey("key_1")]));
        assert_eq!(cache.api_key("d1"), None);
        assert!(cache.api_key("d2").is_some());
        cache.apply(&payload(&[Invalidation::ApiKeysOfOrganization("org_a")]));
        assert_eq!(cache.api_key("d2"), None);
        assert_eq!(cache.api_key("d3").map(|record| record.id), Some("key_3".to_owned()));
    }

    #[test]
    fn an_unknown_kind_empties_the_cache() {
        let cache = enabled();
        cache.put_token_revoked(cache.begin_load(), "a", true);
        cache.apply("zz:1");
        assert_eq!(cache.token_revoked("a"), None);
    }
}
