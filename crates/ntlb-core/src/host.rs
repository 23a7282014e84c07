//! Device -> host.

use burn::tensor::Tensor;

/// Read a float tensor back from the device as f32 (whatever the model's precision).
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("float32 data")
}
