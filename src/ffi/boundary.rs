//! The one path every exported function takes across the C boundary: pointer and length
//! checks, panic catching, error → status + thread-local message, and handle ownership.

use super::status::xq_status;
use crate::{Error, Result};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: String) {
    // Interior NULs would truncate the C string; replace them so the message stays whole.
    let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = message);
}

fn clear_last_error() {
    LAST_ERROR.with(|slot| slot.borrow_mut().clear());
}

/// Trait that lets `CString` be emptied in place without reallocating on every call.
trait Clear {
    fn clear(&mut self);
}

impl Clear for CString {
    fn clear(&mut self) {
        if !self.as_bytes().is_empty() {
            *self = CString::default();
        }
    }
}

/// The message of the last failed libxq call on this thread, or "" if the last call
/// succeeded. Every fallible call clears it on entry. The pointer stays valid until the
/// next libxq call on the same thread; never free it.
#[no_mangle]
pub extern "C" fn xq_last_error_message() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

/// Runs the body of an exported function: clears the last error, catches panics, and
/// turns the outcome into a status (setting the message on failure).
pub fn guard(body: impl FnOnce() -> Result<()>) -> xq_status {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => xq_status::XQ_OK,
        Ok(Err(error)) => {
            let status = xq_status::from(&error);
            set_last_error(error.to_string());
            status
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            set_last_error(Error::Internal(format!("panic caught at the C boundary: {what}")).to_string());
            xq_status::XQ_ERROR_INTERNAL
        }
    }
}

/// Borrows a required input pointer, failing with [`Error::NullPointer`] naming `name`.
///
/// # Safety
/// If non-null, `ptr` must point to a valid, initialised `T` that outlives `'a` and is not
/// mutated during it (the C API's documented contract for input arguments).
pub unsafe fn arg_ref<'a, T>(ptr: *const T, name: &'static str) -> Result<&'a T> {
    // SAFETY: null is rejected; validity otherwise is the caller's contract above.
    unsafe { ptr.as_ref() }.ok_or(Error::NullPointer(name))
}

/// Borrows a required in/out pointer mutably, failing with [`Error::NullPointer`].
///
/// # Safety
/// If non-null, `ptr` must point to a valid `T`, exclusively borrowed for `'a`.
pub unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &'static str) -> Result<&'a mut T> {
    // SAFETY: null is rejected; validity and exclusivity are the caller's contract above.
    unsafe { ptr.as_mut() }.ok_or(Error::NullPointer(name))
}

/// An output parameter that has been checked for NULL and is written only on success.
pub struct Out<T> {
    ptr: *mut T,
}

impl<T> Out<T> {
    /// Checks an output pointer without writing it.
    ///
    /// # Safety
    /// If non-null, `ptr` must point to storage for a `T` that is writable until
    /// [`Out::write`] is called.
    pub unsafe fn new(ptr: *mut T, name: &'static str) -> Result<Self> {
        if ptr.is_null() {
            Err(Error::NullPointer(name))
        } else {
            Ok(Out { ptr })
        }
    }

    /// Stores the result. Call it last, once nothing else can fail.
    pub fn write(self, value: T) {
        // SAFETY: `ptr` is non-null (checked in `new`) and writable (the contract of `new`);
        // `write` does not read or drop the old contents.
        unsafe { self.ptr.write(value) }
    }
}

/// Borrows a required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// If non-null, `ptr` must point to a NUL-terminated string that lives for `'a`.
pub unsafe fn arg_str<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(Error::NullPointer(name));
    }
    // SAFETY: non-null, and NUL-terminated by the caller's contract.
    let cstr = unsafe { CStr::from_ptr(ptr) };
    cstr.to_str()
        .map_err(|_| Error::invalid_argument(name, "is not valid UTF-8"))
}

/// Borrows a C array of `len` elements, rejecting NULL (unless `len == 0`) and lengths
/// above `max_len` before anything is read.
///
/// # Safety
/// If non-null, `ptr` must point to `len` initialised `T`s that live for `'a`.
pub unsafe fn arg_slice<'a, T>(
    ptr: *const T,
    len: usize,
    max_len: usize,
    name: &'static str,
) -> Result<&'a [T]> {
    if len > max_len {
        return Err(Error::invalid_argument(
            name,
            format!("length {len} exceeds the limit of {max_len}"),
        ));
    }
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::NullPointer(name));
    }
    if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
        return Err(Error::invalid_argument(
            name,
            "pointer is not aligned for its element type",
        ));
    }
    // SAFETY: non-null, aligned, `len` bounded above; the caller guarantees `len` valid elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Moves a value to the heap and returns it as an owned opaque handle for C.
pub fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Releases a handle made by [`into_handle`]; NULL is a no-op. Panics in `Drop` are caught.
///
/// # Safety
/// `handle` must be NULL or a pointer returned by [`into_handle::<T>`] not yet freed.
pub unsafe fn free_handle<T>(handle: *mut T) {
    if handle.is_null() {
        return;
    }
    // SAFETY: non-null and produced by `Box::into_raw` for a `T` (caller's contract).
    let boxed = unsafe { Box::from_raw(handle) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(boxed)));
}

/// The current thread's last error message (for Rust tests of the C API).
pub fn last_error() -> String {
    // SAFETY: xq_last_error_message returns a valid NUL-terminated string owned by this thread.
    unsafe { CStr::from_ptr(xq_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_clears_and_failure_sets_the_message() {
        assert_eq!(
            guard(|| Err(Error::NullPointer("model"))),
            xq_status::XQ_ERROR_NULL_POINTER
        );
        assert_eq!(last_error(), "argument `model` is NULL");
        assert_eq!(guard(|| Ok(())), xq_status::XQ_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn panics_become_internal_errors() {
        let status = guard(|| panic!("boom {}", 7));
        assert_eq!(status, xq_status::XQ_ERROR_INTERNAL);
        assert!(last_error().contains("boom 7"), "{}", last_error());
    }

    #[test]
    fn messages_with_nul_survive() {
        guard(|| Err(Error::InvalidModel("bad\0name".into())));
        assert_eq!(last_error(), "invalid model: bad\\0name");
    }

    #[test]
    fn slices_are_bounded_before_use() {
        let data = [1u32, 2, 3];
        // SAFETY: `data` holds 3 elements.
        assert_eq!(unsafe { arg_slice(data.as_ptr(), 3, 8, "dims") }.unwrap(), &data);
        // SAFETY: rejected before reading.
        let err = unsafe { arg_slice(data.as_ptr(), 1 << 40, 8, "dims") }.unwrap_err();
        assert!(err.to_string().contains("dims"));
        // SAFETY: NULL is rejected before reading.
        let null = unsafe { arg_slice::<u32>(std::ptr::null(), 2, 8, "dims") };
        assert!(matches!(null, Err(Error::NullPointer("dims"))));
        // SAFETY: zero length never reads.
        assert!(unsafe { arg_slice::<u32>(std::ptr::null(), 0, 8, "dims") }
            .unwrap()
            .is_empty());
    }

    #[test]
    fn handles_round_trip_and_null_free_is_a_noop() {
        let h = into_handle(vec![1, 2, 3]);
        // SAFETY: `h` was just created and is freed once; NULL is allowed.
        unsafe {
            free_handle(h);
            free_handle::<Vec<i32>>(std::ptr::null_mut());
        }
    }
}
