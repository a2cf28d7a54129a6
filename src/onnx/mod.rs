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

/// Loads an ONNX model file, fixes the given input shapes (symbolic dims they bind are bound
/// everywhere) and simplifies the graph: constant subgraphs (including Shape → Gather →
/// Concat → Reshape chains) are folded, BatchNormalization is folded into preceding Convs,
/// Identity nodes and dead code are removed. With no shapes, only what is already constant
/// is folded.
pub fn load_file_fixed(
    path: impl AsRef<std::path::Path>,
    shapes: &[(&str, &[usize])],
) -> crate::Result<crate::ir::Graph> {
    let mut graph = load_file(path)?;
    if !shapes.is_empty() {
        graph.fix_input_shapes(shapes)?;
    }
    crate::interp::simplify(&mut graph)?;
    Ok(graph)
}
