//! The NATS JetStream source: change messages (Debezium, Canal or Maxwell
//! JSON, see [`formats`]) read from a stream in order with an ordered
//! consumer. The position is the stream sequence of the last message of a
//! source transaction (`seq=N`); a resume reads the stream from its first
//! message and skips each table's messages up to the sequence it recorded
//! (a table that recorded none gets all of them). A message that
//! cannot be read stops the source with an error naming the stream and
//! the sequence; nothing after it is delivered.

pub mod formats;

use futures::StreamExt;
use tokio::sync::mpsc;

use crate::error::{CdcError, Result};
use std::cmp::Ordering;
use std::collections::HashMap;

use crate::event::{ChangeSource, Resume, SourceEvent, SourcePosition, SourceTableId};
pub use formats::{Decoder, MessageFormat};

fn source_err(message: impl Into<String>) -> CdcError {
    CdcError::Source {
        source_kind: "nats",
        message: message.into(),
    }
}

#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// `host:port` or a `nats://` URL.
    pub server: String,
    pub stream: String,
    /// Only messages on this subject (a filter such as `cdc.shop.>`).
    pub subject: Option<String>,
    pub format: MessageFormat,
    /// Primary keys for tables whose messages name none (Debezium).
    pub primary_keys: Vec<String>,
    /// The positions a sink recorded (`seq=N` per table): reading starts
    /// after the smallest, and a table's messages up to its own are skipped.
    pub resume: Resume,
    /// End once the stream holds no further message (instead of waiting).
    pub stop_at_end: bool,
    pub buffer: usize,
}

impl NatsConfig {
    pub fn new(
        server: impl Into<String>,
        stream: impl Into<String>,
        format: MessageFormat,
    ) -> Self {
        NatsConfig {
            server: server.into(),
            stream: stream.into(),
            subject: None,
            format,
            primary_keys: Vec::new(),
            resume: Resume::default(),
            stop_at_end: false,
            buffer: 4096,
        }
    }
}

/// `seq=N` for stream sequence N.
pub fn position(sequence: u64) -> SourcePosition {
    SourcePosition(format!("seq={sequence}"))
}

/// The stream sequence a position names.
pub fn parse_position(position: &SourcePosition) -> Result<u64> {
    position
        .0
        .strip_prefix("seq=")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            CdcError::Config(format!(
                "bad NATS position {:?}: expected seq=N",
                position.0
            ))
        })
}

pub struct NatsSource {
    events: mpsc::Receiver<Result<SourceEvent>>,
    task: tokio::task::JoinHandle<()>,
}

impl NatsSource {
    /// Connects, finds the stream and starts reading after the resume
    /// position (or from the stream's first message).
    pub async fn start(config: NatsConfig) -> Result<NatsSource> {
        let mut skip = HashMap::new();
        for (table, position) in &config.resume.tables {
            skip.insert(table.clone(), parse_position(position)?);
        }
        let resuming = !skip.is_empty();
        let start = skip.values().min().map_or(1, |seq| seq + 1);
        let client = async_nats::connect(config.server.as_str())
            .await
            .map_err(|e| source_err(format!("cannot connect to {}: {e}", config.server)))?;
        let jetstream = async_nats::jetstream::new(client);
        let mut stream = jetstream
            .get_stream(&config.stream)
            .await
            .map_err(|e| source_err(format!("stream {}: {e}", config.stream)))?;
        let info = stream
            .info()
            .await
            .map_err(|e| source_err(format!("stream {}: {e}", config.stream)))?;
        let first = info.state.first_sequence;
        if start < first && resuming {
            return Err(source_err(format!(
                "stream {} no longer holds sequence {start} (its first is {first}): messages were lost",
                config.stream
            )));
        }
        use async_nats::jetstream::consumer::{pull, DeliverPolicy};
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: config.subject.clone().unwrap_or_default(),
                deliver_policy: DeliverPolicy::ByStartSequence {
                    // From the stream's first message, not after the
                    // smallest recorded sequence: a table that never
                    // committed (killed between two tables' commits of the
                    // first group) records nothing, and a source without a
                    // catalog cannot know it exists. Tables that recorded
                    // skip their messages up to their own sequence.
                    start_sequence: first.max(1),
                },
                ..Default::default()
            })
            .await
            .map_err(|e| {
                source_err(format!(
                    "stream {}: cannot create a consumer: {e}",
                    config.stream
                ))
            })?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| source_err(format!("stream {}: {e}", config.stream)))?;
        let (tx, rx) = mpsc::channel(config.buffer.max(1));
        let task = tokio::spawn(async move {
            if let Err(err) = read(config, messages, skip, &tx).await {
                let _ = tx.send(Err(err)).await;
            }
        });
        Ok(NatsSource { events: rx, task })
    }
}

impl Drop for NatsSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read(
    config: NatsConfig,
    mut messages: async_nats::jetstream::consumer::pull::Ordered,
    skip: HashMap<SourceTableId, u64>,
    tx: &mpsc::Sender<Result<SourceEvent>>,
) -> Result<()> {
    let mut decoder = Decoder::new(config.format, config.primary_keys.clone());
    // Sequences up to the smallest recorded one are read again only for
    // the tables that recorded none (see `NatsSource::start`).
    let replayed_after = skip.values().min().map_or(0, |seq| seq + 1);
    // Whether changes were sent since the last commit.
    let mut open = false;
    loop {
        let next = if config.stop_at_end {
            match tokio::time::timeout(std::time::Duration::from_millis(500), messages.next()).await
            {
                Ok(next) => next,
                Err(_) => return Ok(()),
            }
        } else {
            messages.next().await
        };
        let Some(message) = next else {
            return Ok(());
        };
        let message = message.map_err(|e| source_err(format!("stream {}: {e}", config.stream)))?;
        let info = message.info().map_err(|e| {
            source_err(format!(
                "stream {}: a message without JetStream metadata: {e}",
                config.stream
            ))
        })?;
        let sequence = info.stream_sequence;
        let pending = info.pending;
        let decoded = decoder.decode(&message.payload).map_err(|e| {
            source_err(format!(
                "stream {} sequence {sequence} (subject {}): cannot read the {:?} message: {e}",
                config.stream, message.subject, config.format
            ))
        })?;
        for event in decoded.events {
            // a table's messages up to its recorded sequence are committed
            if let SourceEvent::Change(change) = &event {
                if skip
                    .get(&change.table)
                    .is_some_and(|recorded| sequence <= *recorded)
                {
                    continue;
                }
            }
            // A schema alone (a replayed message's) opens no transaction.
            open |= matches!(event, SourceEvent::Change(_));
            if tx.send(Ok(event)).await.is_err() {
                return Ok(());
            }
        }
        if !decoded.ends_transaction {
            continue;
        }
        // Replayed transactions every table had committed: nothing to say.
        if !open && sequence < replayed_after {
            continue;
        }
        let end = if open {
            SourceEvent::Commit {
                position: position(sequence),
            }
        } else {
            SourceEvent::Heartbeat {
                position: position(sequence),
            }
        };
        open = false;
        if tx.send(Ok(end)).await.is_err() {
            return Ok(());
        }
        if config.stop_at_end && pending == 0 {
            return Ok(());
        }
    }
}

#[async_trait::async_trait]
impl ChangeSource for NatsSource {
    async fn next_event(&mut self) -> Result<Option<SourceEvent>> {
        self.events.recv().await.transpose()
    }

    /// The ordered consumer acknowledges nothing: the stream keeps its
    /// messages by its own retention; the sink's recorded sequence is the
    /// resume point.
    async fn acknowledge(&mut self, _position: &SourcePosition) -> Result<()> {
        Ok(())
    }

    fn compare_positions(&self, a: &SourcePosition, b: &SourcePosition) -> Ordering {
        match (parse_position(a), parse_position(b)) {
            (Ok(a), Ok(b)) => a.cmp(&b),
            _ => a.0.cmp(&b.0),
        }
    }

    /// The formats carry whole row images.
    fn may_send_unchanged(&self) -> bool {
        false
    }
}
