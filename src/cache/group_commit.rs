//! Group commit: the small writes an HTTP thread receives while its previous write to Redis is
//! in flight go to Redis together, as one script call (`put_batch.lua`: one Lua call, one AOF
//! append, one reply) and one drain job, and each is answered once that call returns. A lone
//! write does not wait for company: a batch is whatever is queued when the thread's connection
//! is free, never a timer. Each HTTP thread has its own batcher, next to its own connection.
//! A script may only touch one shard (one hash slot in a cluster), so the waiting writes go
//! as one batch per shard, the shards' batches side by side.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use tokio::sync::oneshot;

use super::requests::Request;
use super::{BlobCache, CacheError, Written};
use crate::redis_link::RedisLink;

/// A shard's batch stops growing at this many writes or bytes of blobs (what one script call
/// carries).
const MAX_WRITES: usize = 64;
const MAX_BYTES: usize = 1024 * 1024;

/// One small write waiting for its batch (see [`BlobCache::put`]).
pub(super) struct Queued {
    pub key: String,
    pub kind: &'static str,
    pub extension: String,
    pub content_type: String,
    pub data: Vec<u8>,
    pub request: Request,
    /// Its trace, as `put_batch.lua` records it.
    pub trace: String,
}

struct Waiting {
    write: Queued,
    answer: oneshot::Sender<Result<Written, CacheError>>,
}

/// The writes of one HTTP thread waiting for the thread's connection to be free.
pub(super) struct Batcher {
    conn: RedisLink,
    waiting: RefCell<Vec<Waiting>>,
    /// A task is sending batches; it keeps going until nothing waits.
    sending: Cell<bool>,
}

impl Batcher {
    pub fn new(conn: RedisLink) -> Rc<Self> {
        Rc::new(Self {
            conn,
            waiting: RefCell::new(Vec::new()),
            sending: Cell::new(false),
        })
    }

    /// Writes `write` with whatever else is waiting; on the calling thread's local executor.
    pub async fn write(
        self: Rc<Self>,
        cache: &BlobCache,
        write: Queued,
    ) -> Result<Written, CacheError> {
        let (answer, answered) = oneshot::channel();
        self.waiting.borrow_mut().push(Waiting { write, answer });
        if !self.sending.replace(true) {
            tokio::task::spawn_local(self.clone().send_all(cache.clone()));
        }
        answered.await.map_err(|_| {
            let dropped = std::io::Error::other("the write's batch was dropped");
            CacheError::Unavailable(dropped.into())
        })?
    }

    /// Sends batches until nothing waits: each round, one batch per shard with writes waiting,
    /// side by side.
    async fn send_all(self: Rc<Self>, cache: BlobCache) {
        loop {
            let batches = self.next_round(&cache);
            if batches.is_empty() {
                self.sending.set(false);
                return;
            }
            let sent = batches.into_iter().map(|batch| {
                let (cache, conn) = (&cache, self.conn.clone());
                async move {
                    let writes: Vec<&Queued> = batch.iter().map(|w| &w.write).collect();
                    let written = cache.write_batch(conn, &writes).await;
                    (batch, written)
                }
            });
            for (batch, written) in futures::future::join_all(sent).await {
                match written {
                    Ok(written) => {
                        for (waiting, written) in batch.into_iter().zip(written) {
                            let _ = waiting.answer.send(written);
                        }
                    }
                    Err(e) => {
                        for waiting in batch {
                            let _ = waiting.answer.send(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }

    /// The waiting writes, as one batch per shard, each within [`MAX_WRITES`] and
    /// [`MAX_BYTES`] (a batch's first write may be larger); the rest wait for the next round,
    /// in order.
    fn next_round(&self, cache: &BlobCache) -> Vec<Vec<Waiting>> {
        let mut waiting = self.waiting.borrow_mut();
        let mut batches: Vec<(usize, usize, Vec<Waiting>)> = Vec::new(); // shard, bytes, writes
        let mut rest = Vec::new();
        for w in waiting.drain(..) {
            let shard = cache.shard_of(&w.write.key).index();
            let size = w.write.data.len();
            match batches.iter_mut().find(|(s, ..)| *s == shard) {
                None => batches.push((shard, size, vec![w])),
                Some((_, bytes, batch))
                    if batch.len() < MAX_WRITES && *bytes + size <= MAX_BYTES =>
                {
                    *bytes += size;
                    batch.push(w);
                }
                Some(_) => rest.push(w),
            }
        }
        *waiting = rest;
        batches.into_iter().map(|(.., batch)| batch).collect()
    }
}

#[cfg(test)]
#[path = "group_commit_tests.rs"]
mod tests;
