//! CoOp prompt learning with the NTLB explainability loss.
//!
//! class names -> [`prompt::PromptLayout`] -> [`objective::step`] (logits, relevance scores,
//! loss, ∂loss/∂ctx) -> [`train::train`] (SGD, schedule, checkpoints) -> [`train::LearnedPrompt`].

pub mod augment;
pub mod class_text;
pub mod explain;
pub mod objective;
pub mod prompt;
pub mod relevance;
pub mod scaler;
pub mod train;
