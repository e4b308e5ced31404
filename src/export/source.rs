//! The export's source of events: the partition cache, healing a damaged file on the way.

use anyhow::Result;
use std::collections::HashMap;
use uuid::Uuid;

use crate::assembly::EventSource;
use crate::clock::Clock;
use crate::events::EventTable;
use crate::lake::Lake;
use crate::partitions::{DamagedPartition, EventsRequest, PartitionCache, Prepared, View};
use crate::symbols::Symbols;

pub struct PartitionSource<'a> {
    pub lake: &'a Lake,
    /// What was asked of the partitions (to rebuild one found damaged).
    pub request: &'a EventsRequest<'a>,
    pub cache: &'a PartitionCache,
    pub prepared: &'a Prepared,
    pub clock: &'a Clock,
    /// Each block's position in the request's block list.
    pub block_position: HashMap<Uuid, u32>,
}

impl<'a> PartitionSource<'a> {
    pub fn new(
        lake: &'a Lake,
        request: &'a EventsRequest<'a>,
        cache: &'a PartitionCache,
        prepared: &'a Prepared,
        clock: &'a Clock,
    ) -> Self {
        let block_position = (request.blocks.iter().enumerate())
            .map(|(i, b)| (b.block_id, i as u32))
            .collect();
        Self {
            lake,
            request,
            cache,
            prepared,
            clock,
            block_position,
        }
    }
}

impl EventSource for PartitionSource<'_> {
    /// Reads a view instance's partitions; a damaged partition file is rebuilt and the
    /// instance read again.
    async fn read(
        &mut self,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        table: &mut EventTable,
    ) -> Result<()> {
        loop {
            let files = self.prepared.files(view, instance);
            let read = self
                .cache
                .read_events(
                    files,
                    symbols,
                    &self.block_position,
                    self.clock,
                    self.request.concurrency,
                    table,
                )
                .await;
            let Err(e) = read else { return Ok(()) };
            let Some(damaged) = e.downcast_ref::<DamagedPartition>() else {
                return Err(e);
            };
            (self.cache)
                .heal(self.lake, self.request, self.prepared, damaged)
                .await?;
        }
    }
}
