//! `text_enum!`: a closed set of names stored as `text` (a status, a
//! kind), written once. It defines the enum with its serde, `FromStr` and
//! `Display` spellings (each variant's given name, as the SQL `CHECK`s,
//! the JSON and the command line spell it), and behind the crate's optional features its
//! `sqlx` (`text` column), `clap` (`ValueEnum`) and `utoipa` (schema)
//! mappings, so every crate speaks the same words.

/// Why a string is none of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{got:?} is not one of {expected}")]
pub struct UnknownName {
    /// The string given.
    pub got: String,
    /// The names allowed, space-separated.
    pub expected: &'static str,
}

/// Defines an enum whose variants are stored and shown by the given names.
macro_rules! text_enum {
    (
        $(#[$doc:meta])*
        $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:tt ),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $(
                $(#[$vdoc])*
                #[serde(rename = $text)]
                #[cfg_attr(feature = "clap", value(name = $text))]
                $variant,
            )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$( Self::$variant ),+];

            /// The name as SQL, JSON and the command line spell it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $text, )+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::text_enum::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $( $text => Ok(Self::$variant), )+
                    _ => Err($crate::text_enum::UnknownName {
                        got: s.to_owned(),
                        expected: concat!($( $text, " " ),+).trim_ascii_end(),
                    }),
                }
            }
        }

        $crate::text_enum::text_column!($name, |s: &str| s.parse::<$name>(), |v: &$name| v.as_str());
    };
}

/// Maps a type to a PostgreSQL `text` column (with the `sqlx` feature):
/// `parse` checks what is read, `as_str` is what is written.
#[cfg(feature = "sqlx")]
macro_rules! text_column {
    ($name:ty, $parse:expr, $as_str:expr) => {
        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl sqlx::postgres::PgHasArrayType for $name {
            fn array_type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::postgres::PgHasArrayType>::array_type_info()
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                let as_str: fn(&$name) -> &str = $as_str;
                <&str as sqlx::Encode<'q, sqlx::Postgres>>::encode(as_str(self), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                let parse = $parse;
                Ok(parse(text)?)
            }
        }
    };
}

/// Without the `sqlx` feature a type maps to nothing.
#[cfg(not(feature = "sqlx"))]
macro_rules! text_column {
    ($($ignored:tt)*) => {};
}

pub(crate) use {text_column, text_enum};
