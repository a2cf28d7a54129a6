//! ONNX import and export. The protobuf types live in the private `proto` module and never leave it:
//! the rest of the crate sees only [`crate::ir::Graph`].

mod builder;
mod export;
mod import;
mod ops;
mod proto;
mod tensor;

pub use builder::{add_onnx_node, AttrValue};
pub use export::{save_file, to_bytes, EXPORT_OPSET};
pub use import::{load_bytes, load_file, load_tensor_bytes, tensor_to_bytes, MAX_MODEL_BYTES, OPSET_RANGE};
pub use ops::SUPPORTED as SUPPORTED_OPS;
