//! The golden cases of `../shared/golden` (computed by the original PyTorch code) and how ntlb
//! recomputes them: test support and the `ntlb parity` command, never a production path.
//!
//! case JSON -> [`case`] (schema) -> [`clip_cases`] / [`coop_cases`] / [`trajectory`] (our outputs
//! from the inputs alone) -> [`compare`] (field by field, tolerance per field).

pub mod case;
pub mod clip_cases;
pub mod compare;
pub mod coop_cases;
pub mod fixtures;
pub mod trajectory;
