//! Field paths of a YAML document mapped to their source positions, from one
//! pass over the parser's event stream.
//!
//! serde-saphyr reports a position with each deserialization error but not
//! the field path, and validation runs on the typed spec, which has no
//! positions at all; this map joins the two. Paths are written the way
//! errors show them: `generation.top_p`, `inputs.paths[2]`; the root is `""`.
//!
//! Invariants: building never fails and never recurses (a syntax error just
//! ends the walk, keeping what was seen), so any input is safe; nodes are
//! kept in document order. Keys under a merge key (`<<`) are recorded under
//! the mapping they merge into, flagged so explicit keys win a lookup.

use serde_saphyr::granit_parser::{Event, Parser, Span};

/// A 1-based line and column, counted in characters like serde-saphyr does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, column: 1 };

    fn of(span: &Span) -> Pos {
        Pos {
            line: span.start.line(),
            column: span.start.col() + 1,
        }
    }
}

/// What a node looked like, for "got ..." in type errors.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Shape {
    Scalar(String),
    Sequence,
    Mapping,
    Alias,
}

impl Shape {
    /// A short description for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Shape::Scalar(t) if matches!(t.as_str(), "" | "~" | "null" | "Null" | "NULL") => {
                "null".to_string()
            }
            Shape::Scalar(t) => {
                let mut shown: String = t.chars().take(40).collect();
                if shown.len() < t.len() {
                    shown.push('…');
                }
                format!("`{}`", shown.escape_debug())
            }
            Shape::Sequence => "a list".to_string(),
            Shape::Mapping => "a mapping".to_string(),
            Shape::Alias => "an alias".to_string(),
        }
    }
}

/// One value node: where its key and its value start.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) path: String,
    /// `None` for the root and for sequence items.
    pub(crate) key: Option<Pos>,
    pub(crate) value: Pos,
    pub(crate) shape: Shape,
    merged: bool,
}

impl Node {
    /// Where an error about this field should point: its key when it has one.
    pub(crate) fn anchor(&self) -> Pos {
        self.key.unwrap_or(self.value)
    }
}

/// All value nodes of a document, in document order.
#[derive(Debug, Default)]
pub(crate) struct SourceMap {
    nodes: Vec<Node>,
}

enum Frame {
    Map {
        path: String,
        merged: bool,
        /// The key read and waiting for its value.
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        merged: bool,
        next: usize,
    },
}

/// `parent.key`, or `key` at the root.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl SourceMap {
    pub(crate) fn build(text: &str) -> SourceMap {
        let mut nodes = Vec::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut root_seen = false;
        let mut parser = Parser::new_from_str(text);
        loop {
            let (event, span) = match parser.next_event() {
                Some(Ok(next)) => next,
                Some(Err(_)) => {
                    // The parser stopped after a key and before its value:
                    // that key is the field being read.
                    if let Some(Frame::Map {
                        path,
                        merged,
                        key: Some((name, key_pos)),
                    }) = stack.last()
                    {
                        nodes.push(Node {
                            path: join(path, name),
                            key: Some(*key_pos),
                            value: *key_pos,
                            shape: Shape::Scalar(String::new()),
                            merged: *merged,
                        });
                    }
                    break;
                }
                None => break,
            };
            let pos = Pos::of(&span);
            let shape = match event {
                Event::Scalar(text, ..) => Shape::Scalar(text.into_owned()),
                Event::SequenceStart(..) => Shape::Sequence,
                Event::MappingStart(..) => Shape::Mapping,
                Event::Alias(..) => Shape::Alias,
                Event::SequenceEnd | Event::MappingEnd => {
                    stack.pop();
                    continue;
                }
                Event::DocumentEnd if root_seen => break,
                _ => continue,
            };
            // Where this node sits: (path, key position, merged), or None
            // when the node is a mapping key.
            let placed = match stack.last_mut() {
                None => {
                    root_seen = true;
                    Some((String::new(), None, false))
                }
                Some(Frame::Seq { path, merged, next }) => {
                    *next += 1;
                    Some((format!("{path}[{}]", *next - 1), None, *merged))
                }
                Some(Frame::Map { path, merged, key }) => match key.take() {
                    None => {
                        let name = match &shape {
                            Shape::Scalar(t) => t.clone(),
                            _ => "?".to_string(),
                        };
                        *key = Some((name, pos));
                        None
                    }
                    Some((name, key_pos)) if name == "<<" => {
                        Some((path.clone(), Some(key_pos), true))
                    }
                    Some((name, key_pos)) => Some((join(path, &name), Some(key_pos), *merged)),
                },
            };
            let is_collection = matches!(shape, Shape::Sequence | Shape::Mapping);
            let (path, merged) = match placed {
                Some((path, key, merged)) => {
                    nodes.push(Node {
                        path: path.clone(),
                        key,
                        value: pos,
                        shape: shape.clone(),
                        merged,
                    });
                    (path, merged)
                }
                // A collection used as a key: walk it so the stack stays
                // balanced, under a path nothing looks up.
                None => ("?".to_string(), true),
            };
            if is_collection {
                stack.push(if shape == Shape::Mapping {
                    Frame::Map {
                        path,
                        merged,
                        key: None,
                    }
                } else {
                    Frame::Seq {
                        path,
                        merged,
                        next: 0,
                    }
                });
            }
        }
        SourceMap { nodes }
    }

    /// True when the document has no node at all (empty or comments only).
    pub(crate) fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node at `path`, preferring an explicit key over a merged one.
    pub(crate) fn node(&self, path: &str) -> Option<&Node> {
        let mut found = self.nodes.iter().filter(|n| n.path == path);
        let first = found.next()?;
        if !first.merged {
            return Some(first);
        }
        found.find(|n| !n.merged).or(Some(first))
    }

    /// Where to point for `path`: the field itself, else its nearest present
    /// ancestor (a missing or defaulted key), else the document start.
    pub(crate) fn locate(&self, path: &str) -> Pos {
        let mut p = path;
        loop {
            if let Some(n) = self.node(p) {
                return n.anchor();
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return self.node("").map_or(Pos::START, |n| n.value),
            }
        }
    }

    /// The node whose key starts at `pos`.
    pub(crate) fn key_at(&self, pos: Pos) -> Option<&Node> {
        self.nodes.iter().find(|n| n.key == Some(pos))
    }

    /// The deepest node whose value starts at `pos`.
    pub(crate) fn value_at(&self, pos: Pos) -> Option<&Node> {
        self.nodes.iter().rev().find(|n| n.value == pos)
    }

    /// The last node starting at or before `pos`: the field being read when
    /// a syntax error stopped the parser.
    pub(crate) fn preceding(&self, pos: Pos) -> Option<&Node> {
        self.nodes.iter().rev().find(|n| n.anchor() <= pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
# comment
inputs:
  paths: [a.parquet, \"b.parquet\"]
  overrides:
    seed: s
generation:
  <<: {top_k: 3}
  top_p: 0.5
list:
  - x: 1
  - [y, z]
";

    fn at(line: usize, column: usize) -> Pos {
        Pos { line, column }
    }

    #[test]
    fn records_keys_values_and_items() {
        let m = SourceMap::build(DOC);
        let paths = m.node("inputs.paths").unwrap();
        assert_eq!(paths.key, Some(at(3, 3)));
        assert_eq!(paths.value, at(3, 10));
        assert_eq!(paths.shape, Shape::Sequence);
        assert_eq!(m.node("inputs.paths[1]").unwrap().value, at(3, 22));
        assert_eq!(m.node("inputs.overrides.seed").unwrap().key, Some(at(5, 5)));
        assert_eq!(m.node("list[0].x").unwrap().key, Some(at(10, 5)));
        assert_eq!(m.node("list[1][1]").unwrap().value, at(11, 9));
        assert_eq!(m.node("").unwrap().value, at(2, 1));
    }

    #[test]
    fn merged_keys_land_under_their_target() {
        let m = SourceMap::build(DOC);
        assert_eq!(m.node("generation.top_k").unwrap().key, Some(at(7, 8)));
        assert_eq!(m.node("generation.top_p").unwrap().key, Some(at(8, 3)));
    }

    #[test]
    fn locate_falls_back_to_the_nearest_ancestor() {
        let m = SourceMap::build(DOC);
        assert_eq!(m.locate("inputs.overrides.top_k"), at(4, 3));
        assert_eq!(m.locate("inputs.paths[7]"), at(3, 3));
        assert_eq!(m.locate("engine.threads"), at(2, 1));
    }

    #[test]
    fn lookups_by_position() {
        let m = SourceMap::build(DOC);
        assert_eq!(m.key_at(at(8, 3)).unwrap().path, "generation.top_p");
        assert_eq!(m.value_at(at(3, 10)).unwrap().path, "inputs.paths");
        assert_eq!(m.preceding(at(8, 20)).unwrap().path, "generation.top_p");
        assert_eq!(m.preceding(at(9, 2)).unwrap().path, "list");
    }

    #[test]
    fn a_syntax_error_keeps_what_came_before() {
        let m = SourceMap::build("inputs:\n  paths: [a, b]\n  id: 'x\noutput: {");
        assert!(m.node("inputs.paths[0]").is_some());
        let m = SourceMap::build("inputs:\n  paths: [a]\n  id:\n\t- x\n");
        assert_eq!(
            m.preceding(Pos { line: 4, column: 1 }).unwrap().path,
            "inputs.id"
        );
        assert!(SourceMap::build("").is_empty());
        assert!(SourceMap::build("# just a comment\n").is_empty());
    }
}
