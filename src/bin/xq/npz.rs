//! Reading numpy `.npz` archives (`numpy.savez` / `savez_compressed`: a zip of `NAME.npy`
//! entries, stored or deflated) as named arrays for `xq run --input`.

use std::io::Read;
use std::path::Path;
use xq::ir::{Tensor, MAX_TENSOR_ELEMENTS};
use xq::{npy, Error, Result};

/// The most bytes one entry may inflate to: the largest tensor of 8-byte elements plus a
/// header, so a corrupt or hostile size field cannot make us allocate without bound.
const MAX_ENTRY_BYTES: u64 = MAX_TENSOR_ELEMENTS as u64 * 8 + (1 << 16);

/// The arrays of the `.npz` file at `path`, each named as its entry without `.npy`, in the
/// archive's order.
pub fn read(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let shown = path.display().to_string();
    let corrupt = |why: String| Error::CorruptFile(format!("{shown}: {why}"));
    let file = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| corrupt(format!("not a readable .npz archive ({e})")))?;
    let mut arrays = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| corrupt(format!("entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let entry_name = entry
            .name()
            .map_err(|e| corrupt(format!("entry {i} has no readable name ({e})")))?
            .into_owned();
        let Some(name) = entry_name.strip_suffix(".npy").filter(|n| !n.is_empty()) else {
            return Err(corrupt(format!("entry `{entry_name}` is not an .npy array")));
        };
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(corrupt(format!(
                "entry `{entry_name}` claims {} bytes",
                entry.size()
            )));
        }
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| corrupt(format!("entry `{entry_name}`: {e}")))?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            return Err(corrupt(format!(
                "entry `{entry_name}` inflates beyond {MAX_ENTRY_BYTES} bytes"
            )));
        }
        let tensor = npy::parse(&bytes, &format!("{shown}:{entry_name}"))?;
        if arrays.iter().any(|(n, _): &(String, Tensor)| n == name) {
            return Err(corrupt(format!("array `{name}` appears twice")));
        }
        arrays.push((name.to_string(), tensor));
    }
    if arrays.is_empty() {
        return Err(corrupt("holds no arrays".into()));
    }
    Ok(arrays)
}
