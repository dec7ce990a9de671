//! `--scale TIER=N`: the tier's machines become N, by copying the nodes the file declares in turn (`cam_5th_main`,
//! `cam_5th_oak`, `cam_5th_main_2`, `cam_5th_oak_2`, …), each copy with its template's links; or the first N of
//! them when N is fewer. Per-node sources follow by themselves: the planner gives each matching machine one.

use crate::Error;
use stratum_core::ir::{Application, Endpoint, Tier};

/// Scales one tier of the application to `nodes` machines.
pub(crate) fn scale(application: &mut Application, tier: Tier, nodes: u32) -> Result<(), Error> {
    let templates: Vec<usize> =
        (0..application.nodes.len()).filter(|index| application.nodes[*index].machine.tier == tier).collect();
    if templates.is_empty() {
        return Err(Error::NothingToScale { tier: tier.name() });
    }
    let nodes = nodes as usize;
    if nodes <= templates.len() {
        let dropped: Vec<String> =
            templates[nodes..].iter().map(|index| application.nodes[*index].name.clone()).collect();
        application.nodes.retain(|node| !dropped.contains(&node.name));
        application.links.retain(|link| {
            ![&link.from, &link.to].iter().any(|end| matches!(end, Endpoint::Node(name) if dropped.contains(name)))
        });
        return Ok(());
    }
    let taken: std::collections::HashSet<String> = application.nodes.iter().map(|node| node.name.clone()).collect();
    let mut copies = Vec::with_capacity(nodes - templates.len());
    let mut links = Vec::new();
    let mut round = 2;
    while templates.len() + copies.len() < nodes {
        for template in &templates {
            if templates.len() + copies.len() == nodes {
                break;
            }
            let template = &application.nodes[*template];
            let mut copy = template.clone();
            copy.name = format!("{}_{round}", template.name);
            if taken.contains(&copy.name) {
                return Err(Error::NameTaken { name: copy.name });
            }
            copy.address = None;
            for link in &application.links {
                let rename = |end: &Endpoint| match end {
                    Endpoint::Node(name) if *name == template.name => Endpoint::Node(copy.name.clone()),
                    other => other.clone(),
                };
                let (from, to) = (rename(&link.from), rename(&link.to));
                if from != link.from || to != link.to {
                    let mut link = link.clone();
                    (link.from, link.to) = (from, to);
                    links.push(link);
                }
            }
            copies.push(copy);
        }
        round += 1;
    }
    application.nodes.extend(copies);
    application.links.extend(links);
    Ok(())
}
