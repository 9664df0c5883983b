//! `section!` and `choice!`: one description of each key gives its typed field, its default,
//! its entry in the key table, its `explain` line and its redacted `Debug`.
//!
//! Written as `macro_rules` so that they cost no build time; what a field's type means (how
//! the environment's text becomes a value, how it is read, shown and checked) comes from its
//! [`ConfigValue`](super::ConfigValue) implementation, so the macros only lay out fields.

/// Declares a configuration section: a struct whose fields are keys.
///
/// ```ignore
/// section! {
///     /// Rust documentation of the struct.
///     #[derive(Clone, PartialEq)]
///     pub struct RedirectConfig {
///         /// Rust documentation of the field (optional).
///         disable: bool = true,
///             "the one-line meaning `berth config check` shows";
///         expiry: Duration = Duration::from_secs(20 * 60),
///             "how long a presigned URL stays valid";
///     }
///     validate = RedirectConfig::validate;          // optional: rules beyond the types
///     registry2 = [ignored("x", "why"), unsupported("y", "what berth does instead")]; // optional
/// }
/// ```
///
/// A field is `name: Type [= default], "meaning" [, option]*;`. The default is
/// `Default::default()` when omitted. Options:
/// - `secret`: a credential; `explain` and `Debug` show only whether it is set, and no error
///   message quotes it.
/// - `read = path::to::fn`: a generic `fn<'de, D: Deserializer<'de>>(D) -> Result<Type, D::Error>`
///   that reads the value instead of the type's own [`ConfigValue::read`](super::ConfigValue::read)
///   (e.g. `values::non_empty`, where an empty string means unset).
/// - `show = |value, config| ...`: the text `explain` shows, instead of the type's own.
/// - `debug = |value| ...`: the text `Debug` shows, to redact part of a value.
///
/// The `validate` hook is `fn(&Self, path: &str, problems: &mut Problems)`, where `path` is
/// the section's own path (`storage.redirect`, or `notifications.endpoints[1]` for an element
/// of a list): it names each problem's key below it, `join(path, "expiry")`.
///
/// The macro adds `Default`, `Debug` (secrets redacted) and `Deserialize` (unknown keys
/// refused), the key table `Self::KEYS`, [`ConfigValue`](super::ConfigValue), and
/// [`Section`](super::Section) so that `Vec<Self>` and `BTreeMap<String, Self>` are keys too.
macro_rules! section {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $rustdoc:literal])*
                $field:ident : $ty:ty $(= $default:expr)?, $doc:literal
                    $(, $opt:ident $(= $value:expr)?)*;
            )*
        }
        $(validate = $validate:path;)?
        $(registry2 = [$($extra:expr),* $(,)?];)?
    ) => {
        $(#[$attr])*
        pub struct $name {
            $(
                #[doc = $doc]
                #[doc = ""]
                $(#[doc = $rustdoc])*
                pub $field: $ty,
            )*
        }

        impl $name {
            /// This section's keys: its fields, then the registry:2 keys it does not take.
            pub(crate) const KEYS: &'static [$crate::schema::Key] = &[
                $(
                    $crate::schema::Key {
                        name: stringify!($field),
                        kind: <$ty as $crate::schema::ConfigValue>::KIND,
                        doc: $doc,
                        secret: $crate::schema::key_option!(@secret $($opt $(= $value)?),*),
                    },
                )*
                $($($extra,)*)?
            ];
        }

        impl Default for $name {
            fn default() -> Self {
                $name {
                    $($field: $crate::schema::key_option!(@default $($default)?),)*
                }
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let mut out = f.debug_struct(stringify!($name));
                $(
                    let debug: Option<fn(&$ty) -> String> =
                        $crate::schema::key_option!(@debug $($opt $(= $value)?),*);
                    out.field(
                        stringify!($field),
                        &$crate::schema::DebugField {
                            value: &self.$field,
                            secret: $crate::schema::key_option!(@secret $($opt $(= $value)?),*),
                            debug,
                        },
                    );
                )*
                out.finish()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                const FIELDS: &[&str] = &[$(stringify!($field)),*];

                struct Fields;

                impl<'de> serde::de::Visitor<'de> for Fields {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("struct ", stringify!($name)))
                    }

                    // Keys absent from the map keep their defaults.
                    #[allow(unused_mut)]
                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = <$name as Default>::default();
                        while let Some(key) = map.next_key::<String>()? {
                            match key.as_str() {
                                $(
                                    stringify!($field) => {
                                        // A seed, so that `read` is used for this key alone.
                                        struct Read;

                                        impl<'de> serde::de::DeserializeSeed<'de> for Read {
                                            type Value = $ty;

                                            fn deserialize<D: serde::Deserializer<'de>>(
                                                self,
                                                d: D,
                                            ) -> Result<$ty, D::Error> {
                                                let read = $crate::schema::key_option!(
                                                    @read $ty; $($opt $(= $value)?),*
                                                );
                                                read(d)
                                            }
                                        }

                                        out.$field = map.next_value_seed(Read)?;
                                    }
                                )*
                                other => {
                                    return Err(serde::de::Error::unknown_field(other, FIELDS));
                                }
                            }
                        }
                        Ok(out)
                    }
                }

                d.deserialize_struct(stringify!($name), FIELDS, Fields)
            }
        }

        impl $crate::schema::ConfigValue for $name {
            const KIND: $crate::schema::Kind = $crate::schema::Kind::Section(Self::KEYS);

            fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <Self as serde::Deserialize>::deserialize(d)
            }

            #[allow(unused_variables)]
            fn explain(
                &self,
                path: &str,
                root: &$crate::Config,
                out: &mut Vec<$crate::explain::Setting>,
            ) {
                $(
                    let show: Option<fn(&$ty, &$crate::Config) -> String> =
                        $crate::schema::key_option!(@show $($opt $(= $value)?),*);
                    $crate::schema::explain_field(
                        &self.$field,
                        &$crate::schema::join(path, stringify!($field)),
                        root,
                        $crate::schema::key_option!(@secret $($opt $(= $value)?),*),
                        show,
                        out,
                    );
                )*
            }

            #[allow(unused_variables)]
            fn check(&self, path: &str, problems: &mut $crate::schema::Problems) {
                $(
                    $crate::schema::ConfigValue::check(
                        &self.$field,
                        &$crate::schema::join(path, stringify!($field)),
                        problems,
                    );
                )*
                $($validate(self, path, problems);)?
            }
        }

        impl $crate::schema::Section for $name {}
    };
}

/// Declares a choice of one mode among several, written as registry:2 writes `auth`: the
/// mode's name (`auth: none`) or a mapping whose only key is the mode and holds its section
/// (`auth: {htpasswd: {realm: ..., path: ...}}`).
///
/// ```ignore
/// choice! {
///     /// Rust documentation of the enum.
///     #[derive(Clone, PartialEq, Eq)]
///     pub enum AuthConfig {
///         /// A mode without settings.
///         None = "none", "what the mode means";
///         /// A mode whose settings are a section declared with `section!`.
///         Htpasswd(HtpasswdAuth) = "htpasswd", "what the mode means";
///     }
///     default = AuthConfig::None;
///     registry2 = [unsupported("token", "what berth does instead")];   // optional
/// }
/// ```
///
/// The macro adds `Debug`, `Default`, `Deserialize`, `mode()` (the mode's name), the table of
/// modes `Self::MODES`, and [`ConfigValue`](super::ConfigValue): `explain` shows the mode,
/// then its section's settings.
macro_rules! choice {
    (
        $(#[$attr:meta])*
        pub enum $name:ident {
            $(
                $(#[doc = $rustdoc:literal])*
                $variant:ident $(($section:ty))? = $mode:literal, $doc:literal;
            )*
        }
        default = $default:expr;
        $(registry2 = [$($extra:expr),* $(,)?];)?
    ) => {
        $(#[$attr])*
        #[derive(Debug)]
        pub enum $name {
            $(
                #[doc = $doc]
                #[doc = ""]
                $(#[doc = $rustdoc])*
                $variant $(($section))?,
            )*
        }

        impl $name {
            /// The modes, then the registry:2 modes berth does not have.
            pub(crate) const MODES: &'static [$crate::schema::Key] = &[
                $(
                    $crate::schema::Key {
                        name: $mode,
                        kind: $crate::schema::key_option!(@mode_kind $($section)?),
                        doc: $doc,
                        secret: false,
                    },
                )*
                $($($extra,)*)?
            ];

            /// The mode's name as written in the file.
            pub fn mode(&self) -> &'static str {
                match self {
                    $($name::$variant { .. } => $mode,)*
                }
            }

            /// The mode named `name` (ignoring case, as a value) with its default settings.
            fn named(name: &str) -> Result<Self, String> {
                let name = name.to_ascii_lowercase();
                $(
                    if name == $mode {
                        return Ok($crate::schema::key_option!(
                            @mode_value $name::$variant $(, $section)?; Default::default()
                        ));
                    }
                )*
                Err($crate::schema::not_a_mode(Self::MODES, &name))
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $default
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Modes;

                impl<'de> serde::de::Visitor<'de> for Modes {
                    type Value = $name;

                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        let modes = $crate::schema::accepted($name::MODES).join(", ");
                        write!(f, "a mode ({modes}), or a mapping with one of them as its only key")
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::named(v).map_err(E::custom)
                    }

                    fn visit_map<A: serde::de::MapAccess<'de>>(
                        self,
                        mut map: A,
                    ) -> Result<$name, A::Error> {
                        let modes = || $crate::schema::accepted($name::MODES).join(", ");
                        let Some(mode) = map.next_key::<String>()? else {
                            return Err(serde::de::Error::custom(format!(
                                "no mode given; expected exactly one of {}",
                                modes()
                            )));
                        };
                        // Modes are keys, and keys are compared exactly.
                        let chosen = 'found: {
                            $(
                                if mode == $mode {
                                    let section = map.next_value::<Option<
                                        $crate::schema::Via<
                                            $crate::schema::key_option!(@mode_type $($section)?)
                                        >,
                                    >>()?;
                                    let section = section.map(|s| s.0).unwrap_or_default();
                                    break 'found $crate::schema::key_option!(
                                        @mode_value $name::$variant $(, $section)?; section
                                    );
                                }
                            )*
                            return Err(serde::de::Error::custom(
                                $crate::schema::not_a_mode($name::MODES, &mode),
                            ));
                        };
                        if map.next_key::<String>()?.is_some() {
                            return Err(serde::de::Error::custom(format!(
                                "several modes given; expected exactly one of {}",
                                modes()
                            )));
                        }
                        Ok(chosen)
                    }
                }

                d.deserialize_any(Modes)
            }
        }

        impl $crate::schema::ConfigValue for $name {
            const KIND: $crate::schema::Kind = $crate::schema::Kind::Choice(Self::MODES);

            fn read<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                <Self as serde::Deserialize>::deserialize(d)
            }

            fn explain(
                &self,
                path: &str,
                root: &$crate::Config,
                out: &mut Vec<$crate::explain::Setting>,
            ) {
                out.push($crate::explain::Setting::leaf(path, self.mode().to_owned()));
                let path = $crate::schema::join(path, self.mode());
                match self {
                    $(
                        $crate::schema::key_option!(@mode_pattern $name::$variant, section $(, $section)?) => {
                            $crate::schema::ConfigValue::explain(
                                $crate::schema::key_option!(@mode_section section $(, $section)?),
                                &path,
                                root,
                                out,
                            )
                        }
                    )*
                }
            }

            fn check(&self, path: &str, problems: &mut $crate::schema::Problems) {
                let path = $crate::schema::join(path, self.mode());
                match self {
                    $(
                        $crate::schema::key_option!(@mode_pattern $name::$variant, section $(, $section)?) => {
                            $crate::schema::ConfigValue::check(
                                $crate::schema::key_option!(@mode_section section $(, $section)?),
                                &path,
                                problems,
                            )
                        }
                    )*
                }
            }
        }
    };
}

/// The pieces `section!` and `choice!` take from a field's options or a mode's variant; each
/// rule looks for one option and skips the others.
macro_rules! key_option {
    (@default) => { Default::default() };
    (@default $default:expr) => { $default };

    (@secret) => { false };
    (@secret secret $(, $($rest:tt)*)?) => { true };
    (@secret $other:ident $(= $value:expr)? $(, $($rest:tt)*)?) => {
        $crate::schema::key_option!(@secret $($($rest)*)?)
    };

    (@read $ty:ty;) => { <$ty as $crate::schema::ConfigValue>::read };
    (@read $ty:ty; read = $read:expr $(, $($rest:tt)*)?) => { $read };
    (@read $ty:ty; $other:ident $(= $value:expr)? $(, $($rest:tt)*)?) => {
        $crate::schema::key_option!(@read $ty; $($($rest)*)?)
    };

    (@show) => { None };
    (@show show = $show:expr $(, $($rest:tt)*)?) => { Some($show) };
    (@show $other:ident $(= $value:expr)? $(, $($rest:tt)*)?) => {
        $crate::schema::key_option!(@show $($($rest)*)?)
    };

    (@debug) => { None };
    (@debug debug = $debug:expr $(, $($rest:tt)*)?) => { Some($debug) };
    (@debug $other:ident $(= $value:expr)? $(, $($rest:tt)*)?) => {
        $crate::schema::key_option!(@debug $($($rest)*)?)
    };

    // A choice's modes: a variant without a section has no settings.
    (@mode_kind) => { $crate::schema::Kind::Section(&[]) };
    (@mode_kind $section:ty) => { <$section as $crate::schema::ConfigValue>::KIND };
    (@mode_type) => { $crate::schema::NoSettings };
    (@mode_type $section:ty) => { $section };
    (@mode_value $name:ident::$variant:ident; $value:expr) => {{
        let _: $crate::schema::NoSettings = $value;
        $name::$variant
    }};
    (@mode_value $name:ident::$variant:ident, $section:ty; $value:expr) => {
        $name::$variant($value)
    };
    (@mode_pattern $name:ident::$variant:ident, $bind:ident) => { $name::$variant };
    (@mode_pattern $name:ident::$variant:ident, $bind:ident, $section:ty) => {
        $name::$variant($bind)
    };
    (@mode_section $bind:ident) => { &$crate::schema::NoSettings {} };
    (@mode_section $bind:ident, $section:ty) => { $bind };
}

pub(crate) use {choice, key_option, section};
