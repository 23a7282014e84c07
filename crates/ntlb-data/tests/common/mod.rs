//! What the integration tests of this crate share.

use ntlb_data::classes::ClassList;

/// `n` classes, ids `n00000000`, `n00000001`, ... (wnid-shaped), names `class 0`, `class 1`, ...
pub fn classes(n: usize) -> ClassList {
    ClassList {
        ids: (0..n).map(|i| format!("n{i:08}")).collect(),
        names: (0..n).map(|i| format!("class {i}")).collect(),
    }
}
