//! `wire_enum!`: one place for each message's wire `type`.

/// Declares a message enum whose variants each name their wire `type` once,
/// next to the variant, and generates from that one name:
/// - the serde tag (`#[serde(rename = "...")]` on the variant; the enum gives
///   `#[serde(tag = "type")]` itself),
/// - a fieldless `Copy` enum of the types (declared with `type Name;` as the
///   first line of the body) with `as_str()`, `from_wire()`, `ALL`, `NAMES`
///   and `Display`,
/// - `kind()` and `type_name()` on the message enum.
///
/// ```ignore
/// wire_enum! {
///     /// Everything a client may send.
///     #[derive(Serialize, Deserialize)]
///     #[serde(tag = "type")]
///     pub enum ClientMessage {
///         type ClientType;
///
///         /// Join a room.
///         #[serde(rename_all = "camelCase")]
///         Join = "join" {
///             /// Room to join.
///             room_name: String,
///         },
///         /// Application-level ping.
///         Ping = "ping",
///     }
/// }
/// ```
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            type $kind:ident;
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $wire:literal $({ $($fields:tt)* })?,
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $wire)]
                $variant $({ $($fields)* })?,
            )*
        }

        #[doc = concat!("The wire `type` of a [`", stringify!($name), "`], without its fields.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $kind {
            $(
                #[doc = concat!("`", $wire, "`: [`", stringify!($name), "::", stringify!($variant), "`].")]
                $variant,
            )*
        }

        impl $kind {
            /// Every type, in declaration order.
            pub const ALL: &'static [$kind] = &[$($kind::$variant),*];
            /// The wire names of [`Self::ALL`], in the same order.
            pub const NAMES: &'static [&'static str] = &[$($wire),*];

            /// The wire name (the `type` field).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($kind::$variant => $wire,)*
                }
            }

            /// The type with this wire name, if there is one.
            pub fn from_wire(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some($kind::$variant),)*
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $kind {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl $name {
            /// The type of this message.
            pub fn kind(&self) -> $kind {
                match self {
                    $($name::$variant { .. } => $kind::$variant,)*
                }
            }

            /// The wire `type` of this message.
            pub fn type_name(&self) -> &'static str {
                self.kind().as_str()
            }
        }
    };
}

/// Declares a fieldless enum of wire strings (an error code, a reason):
/// each variant names its string once, next to it, and that one name is
/// the serde name (`#[serde(rename = "...")]`), `as_str()`, `Display` and
/// an entry of `ALL`.
macro_rules! wire_strings {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$variant_meta:meta])*
                $variant:ident = $wire:literal,
            )*
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$variant_meta])*
                #[serde(rename = $wire)]
                $variant,
            )*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use wire_enum;
pub(crate) use wire_strings;
