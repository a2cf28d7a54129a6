//! The graph IR: element types, tensors, typed operators, graphs, validation and shape
//! inference. Every front end (ONNX import, the C graph builder) produces it and every
//! later stage (interpreter, quantizer, partitioner) consumes it.

pub mod depth_space;
mod dtype;
pub mod einsum;
pub mod elementwise_region;
mod graph;
pub mod infer;
pub mod op;
pub mod passes;
pub mod pointwise;
pub mod qdq;
pub mod resize;
pub mod shapes;
mod tensor;
pub mod transformer;
mod validate;

pub use dtype::DType;
pub use graph::{Dim, Graph, Node, TensorInfo};
pub use op::Op;
pub use tensor::{checked_numel, Tensor, TensorData, MAX_TENSOR_ELEMENTS};
pub use validate::MAX_NODES;
