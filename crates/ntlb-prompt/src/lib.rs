//! CoOp prompt learning with the NTLB explainability loss.
//!
//! files/images -> [`prompt::PromptLayout`] (class prompts) -> [`objective::step`]
//! (logits, relevance scores, loss, ∂loss/∂ctx) -> [`train`] (SGD, schedule, checkpoints).

pub mod objective;
pub mod parity;
pub mod prompt;
pub mod relevance;
