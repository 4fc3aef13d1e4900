//! Limits on the data model, with their defaults in one place.
//!
//! Every limit is explicit and configurable; a value over a limit is a typed
//! error, never a truncation.

/// `LABELS_PER_SERIES_MAX_DEFAULT` is the default cap on labels in one
/// series, `__name__` included (Mimir uses 30; Prometheus has no default).
pub const LABELS_PER_SERIES_MAX_DEFAULT: usize = 64;
/// `LABEL_NAME_BYTES_MAX_DEFAULT` is the default cap on a label name's
/// UTF-8 length in bytes.
pub const LABEL_NAME_BYTES_MAX_DEFAULT: usize = 1024;
/// `LABEL_VALUE_BYTES_MAX_DEFAULT` is the default cap on a label value's
/// UTF-8 length in bytes.
pub const LABEL_VALUE_BYTES_MAX_DEFAULT: usize = 2048;

// How the defaults relate: a maximal series must still fit in the 16-bit
// length fields that some encodings may use per label, and the whole label
// set of a maximal series stays below 1 MiB.
const _: () = assert!(LABEL_NAME_BYTES_MAX_DEFAULT <= u16::MAX as usize);
const _: () = assert!(LABEL_VALUE_BYTES_MAX_DEFAULT <= u16::MAX as usize);
const _: () = assert!(
    LABELS_PER_SERIES_MAX_DEFAULT * (LABEL_NAME_BYTES_MAX_DEFAULT + LABEL_VALUE_BYTES_MAX_DEFAULT)
        < 1 << 20
);

/// `LabelLimits` bounds the size of one series' label set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelLimits {
    /// Maximum number of labels (after dropping empty values), inclusive.
    pub labels_per_series_max: usize,
    /// Maximum bytes in one label name, inclusive.
    pub label_name_bytes_max: usize,
    /// Maximum bytes in one label value, inclusive.
    pub label_value_bytes_max: usize,
}

impl Default for LabelLimits {
    fn default() -> Self {
        LabelLimits {
            labels_per_series_max: LABELS_PER_SERIES_MAX_DEFAULT,
            label_name_bytes_max: LABEL_NAME_BYTES_MAX_DEFAULT,
            label_value_bytes_max: LABEL_VALUE_BYTES_MAX_DEFAULT,
        }
    }
}

impl LabelLimits {
    /// `UNLIMITED` accepts any label set the encoding can represent; for
    /// decoding data that was validated when it was written.
    pub const UNLIMITED: LabelLimits = LabelLimits {
        labels_per_series_max: usize::MAX,
        label_name_bytes_max: usize::MAX,
        label_value_bytes_max: usize::MAX,
    };
}
