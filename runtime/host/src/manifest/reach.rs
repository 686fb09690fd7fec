//! What a manifest reaches beyond its own plugin: the topics whose records it sees or
//! writes and the groups it reads as. A deploy carries all of it, so whoever deploys
//! a version needs permission on each (the server maps these to ACL checks); the
//! host only says what they are.

use super::{Kind, Manifest};

/// The topics and groups a plugin version touches, each name once, in manifest order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reach {
    /// Topics whose pipeline it joins (`[[attach]]` of a filter, transform or
    /// router): it sees and changes every record published there.
    pub pipelines: Vec<String>,
    /// Topics it writes: dead-letter topics, a router's destinations, a source's
    /// output.
    pub produces: Vec<String>,
    /// Topics a sink or a processor reads.
    pub consumes: Vec<String>,
    /// Consumer groups it reads as (a sink's, a processor's).
    pub groups: Vec<String>,
}

impl Manifest {
    /// What deploying this manifest touches.
    pub fn reach(&self) -> Reach {
        let mut r = Reach::default();
        match self.kind {
            Kind::Filter | Kind::Transform | Kind::Router => {
                for a in &self.attach {
                    push(&mut r.pipelines, a.topic.clone());
                    if let Some(dlq) = a.dead_letter() {
                        push(&mut r.produces, dlq);
                    }
                }
                for d in self.router.iter().flat_map(|s| &s.destinations) {
                    push(&mut r.produces, d.clone());
                }
            }
            Kind::Source | Kind::Sink => {
                let settings = self.connector_settings();
                for a in &self.attach {
                    let into = if self.kind == Kind::Source {
                        &mut r.produces
                    } else {
                        &mut r.consumes
                    };
                    push(into, a.topic.clone());
                    push(&mut r.produces, settings.dead_letter_topic_of(&a.topic));
                }
                if self.kind == Kind::Sink {
                    push(&mut r.groups, settings.group_of(&self.name));
                }
            }
            Kind::Processor => {
                let settings = self.processor.iter();
                for p in settings {
                    for input in &p.inputs {
                        push(&mut r.consumes, input.clone());
                    }
                    for output in &p.outputs {
                        push(&mut r.produces, output.clone());
                    }
                    for input in &p.inputs {
                        if let Some(late) = p.late_topic_of(&self.name, input) {
                            push(&mut r.produces, late);
                        }
                        let dead_letters = super::ProcessorSettings::dead_letter_topic_of(input);
                        push(&mut r.produces, dead_letters);
                    }
                    push(
                        &mut r.groups,
                        super::ProcessorSettings::group_of(&self.name),
                    );
                }
            }
            Kind::Acl => {}
        }
        r
    }
}

fn push(names: &mut Vec<String>, name: String) {
    if !names.contains(&name) {
        names.push(name);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn reach(text: &str) -> Reach {
        Manifest::parse(text, Path::new("t/plugin.toml"))
            .unwrap()
            .reach()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_router_reaches_its_topics_dead_letters_and_destinations() {
        let r = reach(
            "name = \"r\"\nkind = \"router\"\ncomponent = \"r.wasm\"\n\
             [router]\ndestinations = [\"out-a\", \"out-b\"]\n\
             [[attach]]\ntopic = \"in\"\n\
             [[attach]]\ntopic = \"in2\"\non_error = \"reject\"\n\
             [[attach]]\ntopic = \"in3\"\ndead_letter_topic = \"bad\"\n",
        );
        assert_eq!(r.pipelines, names(&["in", "in2", "in3"]));
        assert_eq!(r.produces, names(&["in.dlq", "bad", "out-a", "out-b"]));
        assert!(r.consumes.is_empty() && r.groups.is_empty());
    }

    #[test]
    fn connectors_reach_what_they_read_and_write() {
        let sink = reach(
            "name = \"s\"\nkind = \"sink\"\ncomponent = \"s.wasm\"\n\
             [[attach]]\ntopic = \"a\"\n[[attach]]\ntopic = \"b\"\n",
        );
        assert_eq!(sink.consumes, names(&["a", "b"]));
        assert_eq!(sink.produces, names(&["a.dlq", "b.dlq"]));
        assert_eq!(sink.groups, names(&["connector.s"]));
        assert!(sink.pipelines.is_empty());
        let source = reach(
            "name = \"g\"\nkind = \"source\"\ncomponent = \"g.wasm\"\n\
             [[attach]]\ntopic = \"in\"\n[connector]\ndead_letter_topic = \"dl\"\n",
        );
        assert_eq!(source.produces, names(&["in", "dl"]));
        assert!(source.consumes.is_empty() && source.groups.is_empty());
    }
}
