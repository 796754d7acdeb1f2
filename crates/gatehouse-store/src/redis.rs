//! The optional Redis connection (shared ephemeral state across instances: rate limits,
//! short-lived challenges), and its readiness check.

use async_trait::async_trait;
use gatehouse_domain::{ReadinessCheck, StoreError};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// A reconnecting, multiplexed Redis connection. Cloning is cheap.
#[derive(Clone)]
pub struct Redis {
    connection: ConnectionManager,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never print it.
        formatter.write_str("Redis")
    }
}

impl Redis {
    /// Connects now, so a wrong URL stops start-up instead of failing the first request.
    pub async fn connect(url: &str) -> Result<Redis, StoreError> {
        let client = redis::Client::open(url).map_err(|error| {
            StoreError::Other(format!("invalid Redis URL: {}", error.kind_name()))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(std::time::Duration::from_secs(2)))
            .set_number_of_retries(1);
        let connection =
            ConnectionManager::new_with_config(client, config).await.map_err(|error| {
                StoreError::Unavailable(format!("cannot reach Redis: {}", error.kind_name()))
            })?;
        Ok(Redis { connection })
    }

    /// A handle for commands; it reconnects by itself after a failure.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }
}

trait KindName {
    fn kind_name(&self) -> String;
}

impl KindName for redis::RedisError {
    /// The category of a Redis error without its detail, which can echo the URL.
    fn kind_name(&self) -> String {
        format!("{:?}", self.kind())
    }
}

#[async_trait]
impl ReadinessCheck for Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    /// Not required: a Redis outage must not take every instance out of the load balancer at
    /// once. It shows as `unavailable` in `/readyz`'s body (and in the logs); each use decides
    /// how to degrade (rate limits fail closed on sign-in, ceremonies answer 503).
    fn required(&self) -> bool {
        false
    }

    async fn check(&self) -> Result<(), String> {
        let mut connection = self.connection();
        let answer: String = redis::cmd("PING")
            .query_async(&mut connection)
            .await
            .map_err(|error| format!("PING failed: {}", error.kind_name()))?;
        if answer == "PONG" { Ok(()) } else { Err(format!("unexpected PING answer {answer:?}")) }
    }
}
