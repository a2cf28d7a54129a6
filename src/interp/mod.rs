//! The float reference interpreter: runs any IR graph (NCHW) on [`Tensor`]s. It is the
//! calibration engine of the quantizer and the fallback for nodes the delegate does not
//! take. Plan once ([`Interpreter::new`]), run many times.

mod fold;
pub mod kernels;

pub use fold::simplify;

use crate::ir::infer::with_node;
use crate::ir::{Graph, Op, Tensor, TensorInfo};
use crate::{Error, Result};
use std::collections::HashMap;

/// One planned node: its op and the value slots it reads and writes.
struct Step {
    name: String,
    op: Op,
    inputs: Vec<Option<usize>>,
    outputs: Vec<Option<usize>>,
    /// Slots whose last reader is this step (freed after it runs).
    release: Vec<usize>,
}

/// A graph prepared for repeated execution.
pub struct Interpreter {
    steps: Vec<Step>,
    constants: Vec<(usize, Tensor)>,
    inputs: Vec<(usize, TensorInfo)>,
    outputs: Vec<usize>,
    slot_names: Vec<String>,
    slot_count: usize,
}

impl Interpreter {
    /// Plans `graph`, which must have passed [`Graph::validate`] (nodes in topological
    /// order); a graph whose nodes read tensors not yet defined is rejected. The constants
    /// are copied into the plan.
    pub fn new(graph: &Graph) -> Result<Interpreter> {
        check_order(graph)?;
        let mut slots: HashMap<String, usize> = HashMap::new();
        let mut slot_names = Vec::new();
        let mut slot = |name: &str, slots: &mut HashMap<String, usize>| -> usize {
            *slots.entry(name.to_string()).or_insert_with(|| {
                slot_names.push(name.to_string());
                slot_names.len() - 1
            })
        };
        let inputs: Vec<(usize, TensorInfo)> = graph
            .inputs
            .iter()
            .map(|i| (slot(&i.name, &mut slots), i.clone()))
            .collect();
        let constants: Vec<(usize, Tensor)> = graph
            .initializers
            .iter()
            .map(|(n, t)| (slot(n, &mut slots), t.clone()))
            .collect();
        let mut steps: Vec<Step> = graph
            .nodes
            .iter()
            .map(|n| Step {
                name: n.name.clone(),
                op: n.op.clone(),
                inputs: n
                    .inputs
                    .iter()
                    .map(|i| (!i.is_empty()).then(|| slot(i, &mut slots)))
                    .collect(),
                outputs: n
                    .outputs
                    .iter()
                    .map(|o| (!o.is_empty()).then(|| slot(o, &mut slots)))
                    .collect(),
                release: Vec::new(),
            })
            .collect();
        let outputs: Vec<usize> = graph.outputs.iter().map(|o| slot(&o.name, &mut slots)).collect();
        let slot_count = slot_names.len();
        let constant_slots: std::collections::HashSet<usize> = constants.iter().map(|(s, _)| *s).collect();
        let mut last_use: HashMap<usize, usize> = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for &inp in s.inputs.iter().flatten() {
                last_use.insert(inp, i);
            }
        }
        for (s, i) in last_use {
            if !outputs.contains(&s) && !constant_slots.contains(&s) {
                steps[i].release.push(s);
            }
        }
        Ok(Interpreter {
            steps,
            constants,
            inputs,
            outputs,
            slot_names,
            slot_count,
        })
    }

    /// The graph inputs, in the order [`Interpreter::run`] expects them.
    pub fn inputs(&self) -> impl Iterator<Item = &TensorInfo> {
        self.inputs.iter().map(|(_, i)| i)
    }

    /// Runs the graph; `inputs` follow the graph's input order. Returns the outputs in order.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_observed(inputs, &mut |_, _| {})
    }

    /// Runs the graph, calling `observe(tensor_name, value)` for every graph input and then
    /// for every node output as it is computed (the calibration hook).
    pub fn run_observed(
        &self,
        inputs: &[Tensor],
        observe: &mut dyn FnMut(&str, &Tensor),
    ) -> Result<Vec<Tensor>> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::invalid_argument(
                "inputs",
                format!("the model has {} inputs, got {}", self.inputs.len(), inputs.len()),
            ));
        }
        let mut owned: Vec<Option<Tensor>> = vec![None; self.slot_count];
        let mut borrowed: Vec<Option<&Tensor>> = vec![None; self.slot_count];
        for (slot, t) in &self.constants {
            borrowed[*slot] = Some(t);
        }
        for ((slot, info), t) in self.inputs.iter().zip(inputs) {
            info.check_tensor(t)?;
            borrowed[*slot] = Some(t);
        }
        for ((slot, _), t) in self.inputs.iter().zip(inputs) {
            observe(&self.slot_names[*slot], t);
        }
        for step in &self.steps {
            let args: Vec<Option<&Tensor>> = step
                .inputs
                .iter()
                .map(|s| s.map(|s| owned[s].as_ref().or(borrowed[s])))
                .map(|v| match v {
                    None => Ok(None),
                    Some(Some(t)) => Ok(Some(t)),
                    Some(None) => Err(Error::Internal(format!(
                        "node `{}` ran before its inputs",
                        step.name
                    ))),
                })
                .collect::<Result<_>>()?;
            let results =
                kernels::eval(&step.op, &args).map_err(|e| with_node(e, &step.name, step.op.onnx_name()))?;
            for (slot, value) in step.outputs.iter().zip(results) {
                if let Some(s) = slot {
                    observe(&self.slot_names[*s], &value);
                    owned[*s] = Some(value);
                }
            }
            for &s in &step.release {
                owned[s] = None;
            }
        }
        self.outputs
            .iter()
            .map(|&s| {
                owned[s].clone().or_else(|| borrowed[s].cloned()).ok_or_else(|| {
                    Error::Internal(format!("output `{}` was not computed", self.slot_names[s]))
                })
            })
            .collect()
    }
}

/// Checks that every node reads only inputs, constants or outputs of earlier nodes, and that
/// every graph output is defined.
fn check_order(graph: &Graph) -> Result<()> {
    let mut defined: std::collections::HashSet<&str> = graph
        .inputs
        .iter()
        .map(|i| i.name.as_str())
        .chain(graph.initializers.keys().map(String::as_str))
        .collect();
    for n in &graph.nodes {
        if let Some(missing) = n
            .inputs
            .iter()
            .find(|i| !i.is_empty() && !defined.contains(i.as_str()))
        {
            return Err(Error::InvalidModel(format!(
                "node `{}` reads `{missing}` before it is defined (validate the graph first)",
                n.name
            )));
        }
        defined.extend(n.outputs.iter().map(String::as_str));
    }
    match graph.outputs.iter().find(|o| !defined.contains(o.name.as_str())) {
        Some(o) => Err(Error::InvalidModel(format!(
            "graph output `{}` is never defined",
            o.name
        ))),
        None => Ok(()),
    }
}

/// Plans `graph` and runs it once on `inputs` (convenience when the plan is not reused).
pub fn run_once(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
    Interpreter::new(graph)?.run(inputs)
}

/// Fixes the given input shapes of `graph` (symbolic dims they bind are bound everywhere) and
/// [`simplify`]s it: constant subgraphs (including Shape → Gather → Concat → Reshape chains)
/// are folded, BatchNormalization is folded into preceding Convs, Identity nodes and dead
/// code are removed. With no shapes, only what is already constant is folded. This is what
/// an imported model goes through before it is quantized or compiled.
pub fn simplify_with_shapes(mut graph: Graph, shapes: &[(&str, &[usize])]) -> Result<Graph> {
    if !shapes.is_empty() {
        graph.fix_input_shapes(shapes)?;
    }
    simplify(&mut graph)?;
    Ok(graph)
}
