//! The evaluation harness: files -> features (cached) -> scores -> results -> tables/figures.

pub mod features;
pub mod metrics;
pub mod regress;
pub mod relevance_maps;
pub mod report;
pub mod results;
pub mod sweep;
pub mod zeroshot;
