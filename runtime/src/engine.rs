//! The one wasmtime `Engine` every driver runs on: pooling allocator, copy-on-write memory
//! images, epoch interruption driven by a ticker thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::RuntimeConfig;

/// How often the ticker advances the epoch; deadlines are whole ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// How much of each pooled linear memory stays resident between calls, reset by `memset`.
const KEEP_RESIDENT: usize = 2 << 20;

pub fn build(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(config.max_instances)
        .total_core_instances(config.max_instances * 4)
        .total_memories(config.max_instances * 2)
        .total_tables(config.max_instances * 4)
        .max_memory_size(config.memory_limit)
        .max_memories_per_component(4)
        .max_core_instances_per_component(32)
        .max_tables_per_component(8)
        .max_component_instance_size(1 << 20)
        // A driver call dirties a few hundred KiB of its instance's memory. Resetting a slot
        // with `madvise` makes the kernel flush the TLB of every core running the host
        // (an inter-processor interrupt per call, slower the busier the other cores are) and
        // fault the pages in again on the next call; resetting the pages the call touched
        // (found with PAGEMAP_SCAN where the kernel has it) with `memset` avoids both.
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);

    let mut wasm = Config::new();
    wasm.wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(config.stack_limit)
        .memory_init_cow(true);
    if config.pooling {
        wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Engine::new(&wasm)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub fn start(engine: Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Ticks to allow for `deadline`, rounded up, at least one.
pub fn ticks(deadline: Duration) -> u64 {
    (deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64).max(1) + 1
}
