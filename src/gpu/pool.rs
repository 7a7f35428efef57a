//! Scratch buffers reused across calls, so that a loop calling a loss
//! thousands of times allocates GPU memory only on its first call.
//!
//! A leaf module: the pool knows wgpu buffers and its own free lists, not the
//! context that owns it. The context creates buffers for it
//! ([`GpuContext::scratch`](crate::gpu::context::GpuContext::scratch)), and each loan
//! returns to the free lists it came from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// (size class, usage bits).
type Key = (u64, u32);

/// Free buffers by key, shared by the pool and every buffer on loan from it.
type FreeLists = Arc<Mutex<HashMap<Key, Vec<wgpu::Buffer>>>>;

/// Free buffers by (size class, usage).
pub(crate) struct BufferPool {
    free: FreeLists,
    binding_limit: u64,
    largest: u64,
}

impl BufferPool {
    /// An empty pool whose size classes stay within `binding_limit` for
    /// requests that fit one binding, and within `largest` (the device's
    /// largest buffer) for requests that fit it.
    pub(crate) fn new(binding_limit: u64, largest: u64) -> Self {
        BufferPool { free: FreeLists::default(), binding_limit, largest }
    }

    /// Lends a free buffer of at least `size` bytes with `usage`, or one made
    /// by `create` (given the size class in bytes) when none is free.
    pub(crate) fn take<E>(&self, size: u64, usage: wgpu::BufferUsages, create: impl FnOnce(u64) -> Result<wgpu::Buffer, E>) -> Result<PooledBuffer, E> {
        // A request that fits one binding gets a buffer that does too, so it can be bound whole;
        // one that fits the largest buffer is never rounded past it.
        let limit = self.binding_limit;
        let class = if size <= limit { size_class(size).min(limit) } else { size_class(size) };
        let class = if size <= self.largest { class.min(self.largest) } else { class };
        let key = (class, usage.bits());
        let reused = {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            free.get_mut(&key).and_then(Vec::pop)
        };
        let buffer = match reused {
            Some(b) => b,
            None => create(class)?,
        };
        Ok(PooledBuffer { buffer, discarded: false, key, free: self.free.clone() })
    }
}

/// A buffer on loan from the context's pool; it goes back when dropped.
pub struct PooledBuffer {
    buffer: wgpu::Buffer,
    discarded: bool,
    key: Key,
    free: FreeLists,
}

impl PooledBuffer {
    /// The underlying buffer (at least as large as was asked for).
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl PooledBuffer {
    /// Drops the buffer instead of returning it to the pool: for a buffer
    /// left in a state the next user could not use (mapped, or mapping).
    pub(crate) fn discard(mut self) {
        self.discarded = true;
    }
}

impl std::ops::Deref for PooledBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if self.discarded {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.entry(self.key).or_default().push(self.buffer.clone());
    }
}

/// Rounds a request up to one of eight steps between consecutive powers of
/// two, so buffers are shared between similar sizes while wasting at most
/// 12.5 % (or 256 bytes).
fn size_class(size: u64) -> u64 {
    let size = size.max(256);
    let step = (size.next_power_of_two() / 16).max(256);
    size.next_multiple_of(step)
}

#[cfg(test)]
mod tests {
    use super::size_class;

    #[test]
    fn size_classes_cover_the_request_with_little_waste() {
        for size in [1u64, 255, 256, 257, 1000, 4096, 4097, 1 << 20, (1 << 20) + 1, 333_333_333] {
            let c = size_class(size);
            assert!(c >= size, "{size} -> {c}");
            assert!(c as f64 <= (size.max(256) as f64) * 1.125 + 256.0, "{size} -> {c}");
        }
    }
}
