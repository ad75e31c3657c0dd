//! The queue between writers and a background compactor
//! ([`crate::BackgroundCompactor`], which runs above compaction and commits
//! what it compacts): writers hold its sending end.

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use crate::lsm::BucketId;

/// A message to a background compactor.
pub(crate) enum CompactRequest {
    Compact {
        buckets: HashSet<BucketId>,
        full: bool,
    },
    /// Finish the queued work, then stop.
    Finish,
    /// Answer once every request sent before this one is done.
    Flush(oneshot::Sender<()>),
}

/// Where writers send the buckets they committed; cheap to clone.
#[derive(Clone, Debug)]
pub struct CompactionHandle {
    sender: mpsc::UnboundedSender<CompactRequest>,
}

impl CompactionHandle {
    pub(crate) fn new(sender: mpsc::UnboundedSender<CompactRequest>) -> Self {
        CompactionHandle { sender }
    }

    /// Queues the compaction of `buckets` (full when `full`). Returns
    /// `false` when the compactor has stopped (nothing was queued).
    pub(crate) fn request(&self, buckets: HashSet<BucketId>, full: bool) -> bool {
        self.sender
            .send(CompactRequest::Compact { buckets, full })
            .is_ok()
    }
}
