//! The quantizer object behind `xq_quantizer`: scoped recipes, then the flow
//! prepare (annotate, one observer per sharing group) → calibrate (float interpreter feeding
//! the observers) → convert (QDQ graph).

use super::annotate::{annotate, Annotation};
use super::config::{NameMatch, QuantConfig, QuantScopes};
use super::convert::convert;
use super::observer::Observer;
use super::qparams::QParams;
use crate::interp::Interpreter;
use crate::ir::{Dim, Graph, Tensor};
use crate::{Error, Result};

/// Called after every calibration step with `(samples calibrated so far, expected total)`;
/// the total is the expected sample count given to [`Quantizer::set_progress`], or the
/// samples so far when that is unknown or exceeded.
pub type ProgressFn = Box<dyn FnMut(usize, usize) + Send>;

/// A quantizer: scoped recipes, and after [`Quantizer::prepare`] the prepared graph and its
/// observers.
pub struct Quantizer {
    scopes: QuantScopes,
    prepared: Option<Prepared>,
    progress: Option<ProgressFn>,
    expected_samples: usize,
}

/// The prepared graph with its annotation and one observer per sharing group.
struct Prepared {
    graph: Graph,
    plan: Interpreter,
    annotation: Annotation,
    observers: Vec<Box<dyn Observer>>,
    samples: usize,
}

impl std::fmt::Debug for Quantizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quantizer")
            .field("scopes", &self.scopes)
            .field("prepared", &self.prepared.is_some())
            .field("samples", &self.samples_seen())
            .finish()
    }
}

impl Quantizer {
    /// A quantizer whose global recipe is `global` (`None`: nothing quantized unless scoped).
    pub fn new(global: Option<QuantConfig>) -> Result<Self> {
        Ok(Quantizer {
            scopes: QuantScopes::new(global)?,
            prepared: None,
            progress: None,
            expected_samples: 0,
        })
    }

    /// Sets the recipe for an ONNX op type (`None` leaves it float). Fails once prepared.
    pub fn set_operator_type(&mut self, op_type: &str, config: Option<QuantConfig>) -> Result<()> {
        self.check_not_prepared()?;
        self.scopes.set_op_type(op_type, config)
    }

    /// Sets the recipe for one node name or a name prefix (`None` leaves it float). Fails
    /// once prepared.
    pub fn set_node_name(&mut self, name: NameMatch, config: Option<QuantConfig>) -> Result<()> {
        self.check_not_prepared()?;
        self.scopes.set_name(name, config)
    }

    /// The scoped recipes.
    pub fn scopes(&self) -> &QuantScopes {
        &self.scopes
    }

    /// Installs (or with `None` removes) the progress callback; `expected_samples` is the
    /// number of calibration samples the caller intends to feed (0 if unknown).
    pub fn set_progress(&mut self, callback: Option<ProgressFn>, expected_samples: usize) {
        self.progress = callback;
        self.expected_samples = expected_samples;
    }

    /// Annotates a copy of `graph` (validated and simplified first: constants folded,
    /// BatchNormalization folded into Conv) and creates the observers. Fails if already
    /// prepared.
    pub fn prepare(&mut self, graph: &Graph) -> Result<()> {
        self.check_not_prepared()?;
        let mut graph = graph.clone();
        crate::interp::simplify(&mut graph)?;
        let annotation = annotate(&graph, &self.scopes);
        let mut observers = Vec::with_capacity(annotation.groups.len());
        for group in &annotation.groups {
            let scheme = group.config.activation_scheme()?;
            let mut observer = group.config.observer.build(scheme.rule())?;
            // Constant members (e.g. an Add's constant operand) are observed once, now.
            for t in group.tensors.iter().filter_map(|t| graph.initializers.get(t)) {
                observer.update(&t.to_f32_vec()?, t.dims())?;
            }
            observers.push(observer);
        }
        let plan = Interpreter::new(&graph)?;
        self.prepared = Some(Prepared {
            graph,
            plan,
            annotation,
            observers,
            samples: 0,
        });
        Ok(())
    }

    /// Whether [`Quantizer::prepare`] has run.
    pub fn is_prepared(&self) -> bool {
        self.prepared.is_some()
    }

    /// The prepared graph's inputs (types the calibration inputs must match).
    pub fn prepared_graph(&self) -> Option<&Graph> {
        self.prepared.as_ref().map(|p| &p.graph)
    }

    /// Runs the float graph on one sample or a batch (batch = leading dimension; every input
    /// in graph input order) and updates the observers. A batch of `B > 1` for a model whose
    /// inputs all have a fixed leading dimension of 1 is run one sample at a time (the
    /// progress callback then fires per sample). Fails with `InvalidState` before prepare,
    /// with `ShapeMismatch` / `DtypeMismatch` / `InvalidArgument` for inputs that do not match
    /// the model (checked before any observer changes).
    pub fn calibrate(&mut self, inputs: &[Tensor]) -> Result<()> {
        let prepared = self.prepared.as_mut().ok_or_else(|| {
            Error::InvalidState(
                "calibrate called before prepare: prepare the quantizer with a model first".into(),
            )
        })?;
        match split_batch_for_fixed_model(&prepared.graph, inputs)? {
            Some(samples) => {
                for sample in samples {
                    prepared.observe(&sample)?;
                    prepared.samples += 1;
                    report_progress(&mut self.progress, prepared.samples, self.expected_samples);
                }
            }
            None => {
                prepared.observe(inputs)?;
                let batch = inputs
                    .first()
                    .and_then(|t| t.dims().first().copied())
                    .unwrap_or(1);
                prepared.samples += batch.max(1);
                report_progress(&mut self.progress, prepared.samples, self.expected_samples);
            }
        }
        Ok(())
    }

    /// Samples calibrated so far (0 before prepare).
    pub fn samples_seen(&self) -> usize {
        self.prepared.as_ref().map_or(0, |p| p.samples)
    }

    /// The activation parameters of each sharing group, by tensor name (sorted by name).
    pub fn activation_qparams(&self) -> Result<Vec<(String, QParams)>> {
        let prepared = self.prepared_or_err("activation_qparams")?;
        let per_group = group_qparams(prepared)?;
        let mut out: Vec<(String, QParams)> = prepared
            .annotation
            .tensor_group
            .iter()
            .map(|(t, &g)| (t.clone(), per_group[g]))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Builds the QDQ graph. Fails with `InvalidState` before prepare, or when static
    /// activations need calibration and no sample was calibrated.
    pub fn convert(&self) -> Result<Graph> {
        let prepared = self.prepared_or_err("convert")?;
        let qparams = group_qparams(prepared)?;
        convert(&prepared.graph, &prepared.annotation, &qparams)
    }

    /// A text summary: one line per node saying how it was annotated or why it stays float.
    pub fn report(&self) -> String {
        match &self.prepared {
            None => "not prepared\n".to_string(),
            Some(p) => {
                let mut s = format!(
                    "{} activation sharing groups, {} quantized weights, {} dynamic inputs, {} samples\n",
                    p.annotation.groups.len(),
                    p.annotation.weights.len(),
                    p.annotation.dynamic_inputs.len(),
                    p.samples
                );
                for line in &p.annotation.report {
                    s.push_str(line);
                    s.push('\n');
                }
                s
            }
        }
    }

    fn prepared_or_err(&self, what: &str) -> Result<&Prepared> {
        self.prepared
            .as_ref()
            .ok_or_else(|| Error::InvalidState(format!("{what} called before prepare")))
    }

    fn check_not_prepared(&self) -> Result<()> {
        if self.prepared.is_some() {
            return Err(Error::InvalidState(
                "the quantizer is already prepared; scopes and the model are fixed".into(),
            ));
        }
        Ok(())
    }
}

impl Prepared {
    /// Runs the float graph once and feeds every annotated tensor to its group's observer.
    fn observe(&mut self, inputs: &[Tensor]) -> Result<()> {
        let Prepared {
            plan,
            annotation,
            observers,
            ..
        } = self;
        let mut failure: Option<Error> = None;
        plan.run_observed(inputs, &mut |name, value| {
            let Some(&group) = annotation.tensor_group.get(name) else {
                return;
            };
            if failure.is_some() {
                return;
            }
            let result = value
                .as_f32()
                .and_then(|data| observers[group].update(data, value.dims()));
            if let Err(e) = result {
                failure = Some(e);
            }
        })?;
        failure.map_or(Ok(()), Err)
    }
}

fn report_progress(progress: &mut Option<ProgressFn>, done: usize, expected: usize) {
    if let Some(cb) = progress.as_mut() {
        cb(done, expected.max(done));
    }
}

/// Splits a batch into single samples when every graph input has a fixed leading dimension
/// of 1 and every given tensor has the declared rank and the same leading dimension `B > 1`.
/// `None` when no split applies (the inputs are then checked by the interpreter as given).
fn split_batch_for_fixed_model(graph: &Graph, inputs: &[Tensor]) -> Result<Option<Vec<Vec<Tensor>>>> {
    if inputs.len() != graph.inputs.len() || inputs.is_empty() {
        return Ok(None);
    }
    let batch = inputs[0].dims().first().copied().unwrap_or(0);
    let splittable = batch > 1
        && graph.inputs.iter().zip(inputs).all(|(info, t)| {
            matches!(info.shape.as_deref(), Some([Dim::Known(1), ..]) if info.shape.as_ref().map(Vec::len) == Some(t.dims().len()))
                && t.dims().first() == Some(&batch)
        });
    if !splittable {
        return Ok(None);
    }
    let mut samples: Vec<Vec<Tensor>> = vec![Vec::with_capacity(inputs.len()); batch];
    for t in inputs {
        let bytes = t.to_le_bytes();
        if !bytes.len().is_multiple_of(batch) {
            return Err(Error::Unsupported(format!(
                "cannot split a {} batch of {batch} into samples",
                t.dtype()
            )));
        }
        let per = bytes.len() / batch;
        let mut dims = t.dims().to_vec();
        dims[0] = 1;
        for (i, chunk) in bytes.chunks_exact(per.max(1)).take(batch).enumerate() {
            samples[i].push(Tensor::from_le_bytes(t.dtype(), dims.clone(), chunk)?);
        }
        if per == 0 {
            for sample in samples.iter_mut() {
                sample.push(Tensor::zeros(t.dtype(), dims.clone())?);
            }
        }
    }
    Ok(Some(samples))
}

fn group_qparams(p: &Prepared) -> Result<Vec<QParams>> {
    if p.samples == 0
        && p.annotation
            .groups
            .iter()
            .any(|g| g.tensors.iter().any(|t| !p.graph.initializers.contains_key(t)))
    {
        return Err(Error::InvalidState(
            "static quantization needs calibration: call calibrate with at least one sample before convert"
                .into(),
        ));
    }
    p.observers
        .iter()
        .zip(&p.annotation.groups)
        .map(|(obs, group)| {
            if let Some(fixed) = group.fixed {
                return Ok(fixed);
            }
            let q = obs.qparams().map_err(|e| {
                Error::InvalidState(format!("tensor `{}` has no usable range: {e}", group.tensors[0]))
            })?;
            q.as_per_tensor()
                .ok_or_else(|| Error::Internal("activation observer returned per-axis parameters".into()))
        })
        .collect()
}
