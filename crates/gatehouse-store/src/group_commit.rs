//! Group commit on PostgreSQL: writes of one kind that arrive together share one statement
//! and one commit.
//!
//! A hot write alone (a refresh rotation, an authorization code) is one statement and one
//! commit; on a machine that also signs the tokens, the database's share of it — executor
//! start-up, the commit, the round trip — cost more than the signature. A [`GroupQueue`]
//! sends a write at once when no group of its kind is in flight (alone if nothing else waits:
//! no added wait at a low load); those arriving meanwhile wait for that commit and go
//! together, as one statement over arrays. Beside a group in flight, another starts only once
//! [`NEXT_GROUP_AT`] wait. Every write is answered only after its group's commit, so each
//! acknowledged write is as durable as alone.
//!
//! A group never holds two writes with one key (a second presentation of a refresh token
//! waits for the next group, and finds the token spent as it would alone); a group is sorted
//! by key, so two groups lock rows in the same order. Groups run on connections of their own
//! ([`GroupConnections`]) whose planner only probes indexes: a group's generic plan is made
//! once per connection, and one made while the tables were small joined the requests to
//! `refresh_tokens` by hashing a scan of the whole table, which then ran on every group as the
//! table grew (seen in the bench: 2,759 scans of up to 15,000 rows in 20 s).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use gatehouse_domain::StoreError;
use sqlx::PgPool;
use sqlx::postgres::PgConnectOptions;
use tokio::sync::{Notify, mpsc, oneshot};

/// Most writes in one group.
pub(crate) const MAX_GROUP: usize = 32;
/// Groups of one kind in flight at most: while one waits for its commit's flush, the next
/// executes.
const GROUPS_IN_FLIGHT: usize = 2;
/// Writes waiting before a group starts beside one in flight; fewer wait for it to commit and
/// go together then (larger groups, less work per write for the database).
const NEXT_GROUP_AT: usize = 8;
/// Connections for groups, shared by every kind.
const GROUP_CONNECTIONS: u32 = 4;

/// Planner settings of the groups' connections: nested loops over index probes only.
const INDEX_PROBES_ONLY: [(&str, &str); 3] =
    [("enable_hashjoin", "off"), ("enable_mergejoin", "off"), ("enable_seqscan", "off")];

/// One kind of write that can go in groups.
#[async_trait]
pub(crate) trait GroupWork: Send + Sync + 'static {
    type Request: Send + Sync + 'static;
    type Answer: Send + 'static;
    /// Two requests with one key never share a group.
    fn key(request: &Self::Request) -> &[u8];
    /// The write alone, on the shared pool.
    async fn alone(
        &self,
        pool: &PgPool,
        request: &Self::Request,
    ) -> Result<Self::Answer, StoreError>;
    /// The writes of a group (sorted by key) as one statement, answered in their order.
    async fn together(
        &self,
        pool: &PgPool,
        requests: &[&Self::Request],
    ) -> Result<Vec<Self::Answer>, GroupFailure>;
}

/// One field of every request of a group, as the array a statement binds.
pub(crate) fn column<R, T>(requests: &[&R], field: impl Fn(&R) -> T) -> Vec<T> {
    requests.iter().map(|request| field(request)).collect()
}

/// Why a group went unanswered.
pub(crate) enum GroupFailure {
    /// The database refused the statement, so nothing of it was committed (a deadlock with a
    /// rare concurrent write, say): each write is tried again alone.
    Refused(String),
    /// Each request is answered with this error (its kind and message): the group may have
    /// been committed (the connection broke while it ran, or its answer could not be read) —
    /// trying again could find the group's own writes and take them for a replay — or no
    /// connection could be had in time (the database is unreachable: trying again alone would
    /// only make the caller wait as long again before its 503).
    Failed(fn(String) -> StoreError, String),
}

impl From<sqlx::Error> for GroupFailure {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::Database(_) => GroupFailure::Refused(error.to_string()),
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_) => {
                GroupFailure::Failed(StoreError::Unavailable, error.to_string())
            }
            other => GroupFailure::Failed(StoreError::Other, other.to_string()),
        }
    }
}

impl From<StoreError> for GroupFailure {
    fn from(error: StoreError) -> Self {
        GroupFailure::Failed(StoreError::Corrupt, error.to_string())
    }
}

/// The groups' connections (opened when first needed), shared by the kinds of one pool.
pub(crate) type GroupConnections = PgPool;

/// Opens (lazily) the groups' connections with `connect`, the shared pool's options.
pub(crate) fn group_connections(
    connect: &PgConnectOptions,
    acquire_timeout: std::time::Duration,
) -> GroupConnections {
    crate::database::postgres_pool_options(GROUP_CONNECTIONS, acquire_timeout)
        .connect_lazy_with(connect.clone().options(INDEX_PROBES_ONLY))
}

struct Pending<W: GroupWork> {
    request: W::Request,
    answer: oneshot::Sender<Result<W::Answer, StoreError>>,
}

/// The queue of one kind of write; its task starts with the first write.
pub(crate) struct GroupQueue<W: GroupWork> {
    work: Arc<W>,
    groups: GroupConnections,
    sender: std::sync::OnceLock<mpsc::UnboundedSender<Pending<W>>>,
}

impl<W: GroupWork> std::fmt::Debug for GroupQueue<W> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("GroupQueue").finish_non_exhaustive()
    }
}

impl<W: GroupWork> GroupQueue<W> {
    pub(crate) fn new(work: W, groups: GroupConnections) -> Self {
        Self { work: Arc::new(work), groups, sender: std::sync::OnceLock::new() }
    }

    /// Writes `request`, in a group with whatever else of its kind is waiting.
    pub(crate) async fn submit(
        &self,
        shared: &PgPool,
        request: W::Request,
    ) -> Result<W::Answer, StoreError> {
        let sender = self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            let pools = Pools { shared: shared.clone(), groups: self.groups.clone() };
            tokio::spawn(form_groups(receiver, self.work.clone(), pools));
            sender
        });
        let (answer, answered) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = sender.send(Pending { request, answer }) {
            // The queue's task is gone (its runtime ended): write here, alone.
            return self.work.alone(shared, &pending.request).await;
        }
        answered.await.map_err(|_| StoreError::Other("a group of writes was dropped".into()))?
    }
}

/// The shared pool (a write alone) and the groups' connections.
struct Pools {
    shared: PgPool,
    groups: GroupConnections,
}

async fn form_groups<W: GroupWork>(
    mut receiver: mpsc::UnboundedReceiver<Pending<W>>,
    work: Arc<W>,
    pools: Pools,
) {
    let pools = Arc::new(pools);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(Notify::new());
    let mut waiting: VecDeque<Pending<W>> = VecDeque::new();
    let mut open = true;
    loop {
        while let Ok(pending) = receiver.try_recv() {
            waiting.push_back(pending);
        }
        let busy = in_flight.load(Ordering::Acquire);
        let start = !waiting.is_empty()
            && (busy == 0 || (busy < GROUPS_IN_FLIGHT && waiting.len() >= NEXT_GROUP_AT));
        if start {
            let group = take_group::<W>(&mut waiting);
            in_flight.fetch_add(1, Ordering::AcqRel);
            let (work, pools) = (work.clone(), pools.clone());
            let (in_flight, finished) = (in_flight.clone(), finished.clone());
            tokio::spawn(async move {
                run_group(&*work, &pools, group).await;
                in_flight.fetch_sub(1, Ordering::AcqRel);
                finished.notify_one();
            });
            continue;
        }
        if !open && waiting.is_empty() {
            return;
        }
        tokio::select! {
            arrived = receiver.recv(), if open => match arrived {
                Some(pending) => waiting.push_back(pending),
                None => open = false,
            },
            () = finished.notified() => {}
        }
    }
}

/// The next group from the front of the line: up to [`MAX_GROUP`] writes, no key twice (a
/// second write with a key keeps its place for the next group).
fn take_group<W: GroupWork>(waiting: &mut VecDeque<Pending<W>>) -> Vec<Pending<W>> {
    let mut group: Vec<Pending<W>> = Vec::new();
    let mut rest = VecDeque::new();
    while let Some(pending) = waiting.pop_front() {
        let key = W::key(&pending.request);
        let twice = group.iter().any(|taken| W::key(&taken.request) == key);
        if twice || group.len() >= MAX_GROUP {
            rest.push_back(pending);
        } else {
            group.push(pending);
        }
    }
    *waiting = rest;
    group
}

/// Runs a group and answers each of its writes (see [`GroupFailure`] for a failed group).
async fn run_group<W: GroupWork>(work: &W, pools: &Pools, mut group: Vec<Pending<W>>) {
    if group.len() > 1 {
        group.sort_by(|a, b| W::key(&a.request).cmp(W::key(&b.request)));
        let requests: Vec<&W::Request> = group.iter().map(|pending| &pending.request).collect();
        match work.together(&pools.groups, &requests).await {
            Ok(answers) if answers.len() == group.len() => {
                for (pending, answer) in group.into_iter().zip(answers) {
                    let _ = pending.answer.send(Ok(answer));
                }
                return;
            }
            Ok(answers) => {
                let message = format!("{} answers for a group of {}", answers.len(), group.len());
                for pending in group {
                    let _ = pending.answer.send(Err(StoreError::Corrupt(message.clone())));
                }
                return;
            }
            Err(GroupFailure::Refused(error)) => {
                tracing::debug!(%error, size = group.len(), "a group of writes was refused; one by one");
            }
            Err(GroupFailure::Failed(error, message)) => {
                tracing::warn!(%message, size = group.len(), "a group of writes failed");
                for pending in group {
                    let _ = pending.answer.send(Err(error(message.clone())));
                }
                return;
            }
        }
    }
    let alone = group.into_iter().map(|pending| async move {
        let answer = work.alone(&pools.shared, &pending.request).await;
        let _ = pending.answer.send(answer);
    });
    futures_util::future::join_all(alone).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind of write whose requests are their keys (only grouping is tested here).
    struct Keys;

    #[async_trait]
    impl GroupWork for Keys {
        type Request = Vec<u8>;
        type Answer = ();
        fn key(request: &Vec<u8>) -> &[u8] {
            request
        }
        async fn alone(&self, _: &PgPool, _: &Vec<u8>) -> Result<(), StoreError> {
            Ok(())
        }
        async fn together(&self, _: &PgPool, _: &[&Vec<u8>]) -> Result<Vec<()>, GroupFailure> {
            Ok(Vec::new())
        }
    }

    fn pending(key: &str) -> Pending<Keys> {
        let (answer, _) = oneshot::channel();
        Pending { request: key.as_bytes().to_vec(), answer }
    }

    fn keys<'a>(line: impl IntoIterator<Item = &'a Pending<Keys>>) -> Vec<String> {
        line.into_iter().map(|p| String::from_utf8_lossy(&p.request).into_owned()).collect()
    }

    #[test]
    fn a_group_never_holds_a_key_twice_and_the_second_keeps_its_place() {
        let mut waiting: VecDeque<Pending<Keys>> =
            ["a", "b", "a", "c", "a"].into_iter().map(pending).collect();
        assert_eq!(keys(&take_group(&mut waiting)), ["a", "b", "c"]);
        assert_eq!(keys(&take_group(&mut waiting)), ["a"]);
        assert_eq!(keys(&take_group(&mut waiting)), ["a"]);
        assert!(waiting.is_empty());
    }

    #[test]
    fn a_group_holds_at_most_max_group_writes_in_their_order() {
        let mut waiting: VecDeque<Pending<Keys>> =
            (0..MAX_GROUP + 3).map(|n| pending(&format!("t{n:03}"))).collect();
        let first = take_group(&mut waiting);
        assert_eq!(first.len(), MAX_GROUP);
        assert_eq!(keys(&first)[0], "t000");
        assert_eq!(keys(&waiting), ["t032", "t033", "t034"]);
    }

    #[test]
    fn a_group_that_may_have_been_committed_or_never_left_is_not_tried_again() {
        // The connection broke while it ran: it may have been committed, so each request
        // gets the error rather than a second try that would find its own writes.
        let broken = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        // No connection in time: the database is unreachable; a second try alone would only
        // double the wait before the 503.
        for error in [broken, sqlx::Error::PoolTimedOut] {
            match GroupFailure::from(error) {
                GroupFailure::Failed(kind, message) => {
                    assert!(matches!(kind(message), StoreError::Unavailable(_)));
                }
                GroupFailure::Refused(_) => panic!("only the database's refusal is retried"),
            }
        }
    }
}
