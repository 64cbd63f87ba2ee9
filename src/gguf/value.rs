//! Metadata values: borrowed views into a mapped file (`Value`, `ArrayView`) and owned
//! values for the writer (`OwnedValue`, `OwnedArray`).

use std::fmt;

/// A GGUF metadata value type, with the id the file stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    pub const fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Short name used in messages and by `inspect` (`u32`, `str`, `array`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "str",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }

    /// Encoded size of one value, for the fixed-size types.
    pub const fn fixed_size(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metadata value borrowed from a mapped, validated file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(ArrayView<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl<'a> Value<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// Type description for messages: `u32`, or `array of str` for arrays.
    pub fn type_description(&self) -> String {
        match self {
            Value::Array(a) => format!("array of {}", a.elem_type()),
            other => other.value_type().name().to_string(),
        }
    }

    /// The value as an integer, if it is one (any width or signedness).
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            Value::U8(v) => v.into(),
            Value::I8(v) => v.into(),
            Value::U16(v) => v.into(),
            Value::I16(v) => v.into(),
            Value::U32(v) => v.into(),
            Value::I32(v) => v.into(),
            Value::U64(v) => v.into(),
            Value::I64(v) => v.into(),
            _ => return None,
        })
    }

    /// A copy that does not borrow the file (arrays are decoded in full).
    pub fn to_owned_value(&self) -> OwnedValue {
        match *self {
            Value::U8(v) => OwnedValue::U8(v),
            Value::I8(v) => OwnedValue::I8(v),
            Value::U16(v) => OwnedValue::U16(v),
            Value::I16(v) => OwnedValue::I16(v),
            Value::U32(v) => OwnedValue::U32(v),
            Value::I32(v) => OwnedValue::I32(v),
            Value::F32(v) => OwnedValue::F32(v),
            Value::Bool(v) => OwnedValue::Bool(v),
            Value::String(v) => OwnedValue::String(v.to_string()),
            Value::Array(a) => OwnedValue::Array(a.to_owned_array()),
            Value::U64(v) => OwnedValue::U64(v),
            Value::I64(v) => OwnedValue::I64(v),
            Value::F64(v) => OwnedValue::F64(v),
        }
    }
}

/// A metadata array inside the mapped file. Elements are decoded on access, so a
/// 262144-entry vocabulary costs nothing until it is read.
#[derive(Clone, Copy, PartialEq)]
pub struct ArrayView<'a> {
    elem: ValueType,
    len: usize,
    /// The encoded elements: `len * size` bytes for fixed-size types, and for strings
    /// `len` times (u64 length, bytes). Validated when the file was opened.
    bytes: &'a [u8],
}

impl fmt::Debug for ArrayView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArrayView({}[{}])", self.elem, self.len)
    }
}

impl<'a> ArrayView<'a> {
    /// `bytes` must hold exactly `len` validated elements of type `elem` (not `Array`).
    pub(crate) fn new(elem: ValueType, len: usize, bytes: &'a [u8]) -> Self {
        ArrayView { elem, len, bytes }
    }

    pub fn elem_type(&self) -> ValueType {
        self.elem
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Element `i`: O(1) for fixed-size types, O(i) for strings.
    pub fn get(&self, i: usize) -> Option<Value<'a>> {
        if i >= self.len {
            return None;
        }
        match self.elem.fixed_size() {
            Some(size) => Some(decode_fixed(
                self.elem,
                &self.bytes[i * size..(i + 1) * size],
            )),
            None => self.iter().nth(i),
        }
    }

    pub fn iter(&self) -> ArrayIter<'a> {
        ArrayIter {
            elem: self.elem,
            remaining: self.len,
            bytes: self.bytes,
        }
    }

    /// The strings, or `None` if this is not an array of strings.
    pub fn strings(&self) -> Option<impl ExactSizeIterator<Item = &'a str> + 'a> {
        if self.elem != ValueType::String {
            return None;
        }
        Some(self.iter().map(|v| match v {
            Value::String(s) => s,
            // Unreachable: the element type is String.
            _ => "",
        }))
    }

    /// The elements as f32, if the element type is f32.
    pub fn to_f32_vec(&self) -> Option<Vec<f32>> {
        (self.elem == ValueType::F32).then(|| {
            self.bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        })
    }

    /// The elements as i64, if the element type is an integer type.
    pub fn to_i64_vec(&self) -> Option<Vec<i64>> {
        match self.elem {
            ValueType::I32 => Some(
                self.bytes
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]).into())
                    .collect(),
            ),
            ValueType::U8
            | ValueType::I8
            | ValueType::U16
            | ValueType::I16
            | ValueType::U32
            | ValueType::U64
            | ValueType::I64 => self
                .iter()
                .map(|v| v.as_i128().and_then(|x| i64::try_from(x).ok()))
                .collect(),
            _ => None,
        }
    }

    /// The elements as bools, if the element type is bool.
    pub fn to_bool_vec(&self) -> Option<Vec<bool>> {
        (self.elem == ValueType::Bool).then(|| self.bytes.iter().map(|&b| b != 0).collect())
    }

    /// A copy that does not borrow the file.
    pub fn to_owned_array(&self) -> OwnedArray {
        fn collect<'a, T>(a: &ArrayView<'a>, f: impl Fn(Value<'a>) -> Option<T>) -> Vec<T> {
            a.iter().filter_map(f).collect()
        }
        match self.elem {
            ValueType::U8 => OwnedArray::U8(self.bytes.to_vec()),
            ValueType::I8 => OwnedArray::I8(collect(self, |v| match v {
                Value::I8(x) => Some(x),
                _ => None,
            })),
            ValueType::U16 => OwnedArray::U16(collect(self, |v| match v {
                Value::U16(x) => Some(x),
                _ => None,
            })),
            ValueType::I16 => OwnedArray::I16(collect(self, |v| match v {
                Value::I16(x) => Some(x),
                _ => None,
            })),
            ValueType::U32 => OwnedArray::U32(collect(self, |v| match v {
                Value::U32(x) => Some(x),
                _ => None,
            })),
            ValueType::I32 => OwnedArray::I32(collect(self, |v| match v {
                Value::I32(x) => Some(x),
                _ => None,
            })),
            ValueType::F32 => OwnedArray::F32(self.to_f32_vec().unwrap_or_default()),
            ValueType::Bool => OwnedArray::Bool(self.to_bool_vec().unwrap_or_default()),
            ValueType::String => OwnedArray::String(collect(self, |v| match v {
                Value::String(x) => Some(x.to_string()),
                _ => None,
            })),
            ValueType::U64 => OwnedArray::U64(collect(self, |v| match v {
                Value::U64(x) => Some(x),
                _ => None,
            })),
            ValueType::I64 => OwnedArray::I64(collect(self, |v| match v {
                Value::I64(x) => Some(x),
                _ => None,
            })),
            ValueType::F64 => OwnedArray::F64(collect(self, |v| match v {
                Value::F64(x) => Some(x),
                _ => None,
            })),
            // Nested arrays are rejected when the file is opened.
            ValueType::Array => OwnedArray::U8(Vec::new()),
        }
    }
}

/// Decodes one fixed-size little-endian value; `b` has exactly the type's size.
pub(crate) fn decode_fixed(ty: ValueType, b: &[u8]) -> Value<'static> {
    let a2 = || [b[0], b[1]];
    let a4 = || [b[0], b[1], b[2], b[3]];
    let a8 = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    match ty {
        ValueType::U8 => Value::U8(b[0]),
        ValueType::I8 => Value::I8(b[0] as i8),
        ValueType::Bool => Value::Bool(b[0] != 0),
        ValueType::U16 => Value::U16(u16::from_le_bytes(a2())),
        ValueType::I16 => Value::I16(i16::from_le_bytes(a2())),
        ValueType::U32 => Value::U32(u32::from_le_bytes(a4())),
        ValueType::I32 => Value::I32(i32::from_le_bytes(a4())),
        ValueType::F32 => Value::F32(f32::from_le_bytes(a4())),
        ValueType::U64 => Value::U64(u64::from_le_bytes(a8())),
        ValueType::I64 => Value::I64(i64::from_le_bytes(a8())),
        ValueType::F64 => Value::F64(f64::from_le_bytes(a8())),
        // Callers only pass fixed-size types.
        ValueType::String | ValueType::Array => Value::U8(0),
    }
}

/// Iterator over an `ArrayView`'s elements.
pub struct ArrayIter<'a> {
    elem: ValueType,
    remaining: usize,
    bytes: &'a [u8],
}

impl<'a> Iterator for ArrayIter<'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        match self.elem.fixed_size() {
            Some(size) => {
                let (head, rest) = self.bytes.split_at_checked(size)?;
                self.bytes = rest;
                Some(decode_fixed(self.elem, head))
            }
            None => {
                // Lengths and UTF-8 were validated when the file was opened; the checked
                // accessors only matter if the file changed under the mapping.
                let (len_bytes, rest) = self.bytes.split_at_checked(8)?;
                let len = u64::from_le_bytes(len_bytes.try_into().ok()?);
                let (s, rest) = rest.split_at_checked(usize::try_from(len).ok()?)?;
                self.bytes = rest;
                Some(Value::String(std::str::from_utf8(s).unwrap_or("\u{FFFD}")))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for ArrayIter<'_> {}

/// An owned metadata value, as the writer takes it.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(OwnedArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An owned, homogeneous metadata array (GGUF arrays cannot nest here by construction).
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl OwnedValue {
    pub fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::String(_) => ValueType::String,
            OwnedValue::Array(_) => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }
}

impl OwnedArray {
    pub fn elem_type(&self) -> ValueType {
        match self {
            OwnedArray::U8(_) => ValueType::U8,
            OwnedArray::I8(_) => ValueType::I8,
            OwnedArray::U16(_) => ValueType::U16,
            OwnedArray::I16(_) => ValueType::I16,
            OwnedArray::U32(_) => ValueType::U32,
            OwnedArray::I32(_) => ValueType::I32,
            OwnedArray::F32(_) => ValueType::F32,
            OwnedArray::Bool(_) => ValueType::Bool,
            OwnedArray::String(_) => ValueType::String,
            OwnedArray::U64(_) => ValueType::U64,
            OwnedArray::I64(_) => ValueType::I64,
            OwnedArray::F64(_) => ValueType::F64,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            OwnedArray::U8(v) => v.len(),
            OwnedArray::I8(v) => v.len(),
            OwnedArray::U16(v) => v.len(),
            OwnedArray::I16(v) => v.len(),
            OwnedArray::U32(v) => v.len(),
            OwnedArray::I32(v) => v.len(),
            OwnedArray::F32(v) => v.len(),
            OwnedArray::Bool(v) => v.len(),
            OwnedArray::String(v) => v.len(),
            OwnedArray::U64(v) => v.len(),
            OwnedArray::I64(v) => v.len(),
            OwnedArray::F64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! owned_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for OwnedValue {
            fn from(v: $t) -> Self {
                OwnedValue::$variant(v)
            }
        }
        impl From<Vec<$t>> for OwnedValue {
            fn from(v: Vec<$t>) -> Self {
                OwnedValue::Array(OwnedArray::$variant(v))
            }
        }
    )*};
}

owned_from!(
    u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64,
);

impl From<&str> for OwnedValue {
    fn from(v: &str) -> Self {
        OwnedValue::String(v.to_string())
    }
}

impl From<Vec<&str>> for OwnedValue {
    fn from(v: Vec<&str>) -> Self {
        OwnedValue::Array(OwnedArray::String(
            v.into_iter().map(str::to_string).collect(),
        ))
    }
}

impl From<OwnedArray> for OwnedValue {
    fn from(v: OwnedArray) -> Self {
        OwnedValue::Array(v)
    }
}
