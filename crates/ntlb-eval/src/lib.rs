//! The evaluation harness: files -> features (cached) -> scores -> results -> tables/figures.

pub mod estimate;
pub mod features;
pub mod identity;
pub mod lock;
pub mod method;
pub mod metrics;
pub mod progress;
pub mod regress;
pub mod relevance_maps;
pub mod report;
pub mod results;
pub mod scores;
pub mod shard;
pub mod sweep;
pub mod zeroshot;
