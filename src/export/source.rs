//! The export's source of rows: the partition cache, healing a damaged file on the way.

use anyhow::{Result, bail};
use std::collections::HashMap;
use uuid::Uuid;

use crate::assembly::EventSource;
use crate::clock::Clock;
use crate::lake::Lake;
use crate::partitions::{
    DamagedPartition, EventsRequest, PartitionCache, Prepared, RowTable, RunReading, StreamRuns,
    View,
};
use crate::symbols::Symbols;

/// The prepared partitions of one kind of streams (thread streams, log streams).
pub struct Part<'a> {
    /// What was asked of the partitions (to rebuild one found damaged).
    pub request: &'a EventsRequest<'a>,
    pub prepared: &'a Prepared,
    /// Each block's position in the request's block list.
    block_position: HashMap<Uuid, u32>,
}

impl<'a> Part<'a> {
    pub fn new(request: &'a EventsRequest<'a>, prepared: &'a Prepared) -> Self {
        let block_position = (request.blocks.iter().enumerate())
            .map(|(i, b)| (b.block_id, i as u32))
            .collect();
        Self {
            request,
            prepared,
            block_position,
        }
    }
}

pub struct PartitionSource<'a> {
    pub lake: &'a Lake,
    pub cache: &'a PartitionCache,
    pub clock: &'a Clock,
    pub parts: Vec<Part<'a>>,
    /// The time range shown, if not all: partitions nothing shown comes from are not read.
    pub range: Option<(i64, i64)>,
}

impl PartitionSource<'_> {
    fn part_of(&self, view: View) -> Result<&Part<'_>> {
        match self.parts.iter().find(|p| p.request.views.contains(&view)) {
            Some(part) => Ok(part),
            None => bail!("internal error: view {} was not prepared", view.name()),
        }
    }

    /// Rebuilds the damaged partition a read failed on; any other failure is returned.
    async fn heal(&self, part: &Part<'_>, e: anyhow::Error) -> Result<()> {
        let Some(damaged) = e.downcast_ref::<DamagedPartition>() else {
            return Err(e);
        };
        (self.cache)
            .heal(self.lake, part.request, part.prepared, damaged)
            .await
    }
}

impl<T: RowTable> EventSource<T> for PartitionSource<'_> {
    /// Reads a view instance's partitions; a damaged partition file is rebuilt and the
    /// instance read again.
    async fn read(
        &mut self,
        view: View,
        instance: Uuid,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<()> {
        let part = self.part_of(view)?;
        loop {
            let read = (self.cache)
                .read_rows(
                    part.prepared,
                    view,
                    instance,
                    symbols,
                    &part.block_position,
                    self.clock,
                    part.request.concurrency,
                    self.range.map(|range| (part.request.blocks, range)),
                    table,
                )
                .await;
            match read {
                Ok(()) => return Ok(()),
                Err(e) => self.heal(part, e).await?,
            }
        }
    }

    /// A whole export's large thread streams (a window's are read by what it reaches).
    async fn thread_runs(&mut self, stream: Uuid) -> Result<Option<StreamRuns>> {
        if self.range.is_some() {
            return Ok(None);
        }
        let part = self.part_of(View::THREAD_SPANS)?;
        Ok(part.prepared.runs_of(stream, part.request.blocks))
    }

    /// A whole export's async partitions (a window's are read by what it reaches).
    async fn async_runs(&mut self, process: Uuid) -> Result<Option<Vec<StreamRuns>>> {
        if self.range.is_some() {
            return Ok(None);
        }
        let part = self.part_of(View::ASYNC_SPANS)?;
        Ok(part.prepared.async_runs(process, part.request.blocks))
    }

    /// Reads the next run; a damaged partition file is rebuilt and the read goes on.
    async fn next_run(
        &mut self,
        runs: &mut StreamRuns,
        symbols: &mut Symbols,
        table: &mut T,
    ) -> Result<bool> {
        let part = self.part_of(runs.view())?;
        let reading = RunReading {
            block_position: &part.block_position,
            clock: self.clock,
            concurrency: part.request.concurrency,
        };
        loop {
            let read = (self.cache)
                .read_run(part.prepared, runs, &reading, symbols, table)
                .await;
            match read {
                Ok(more) => return Ok(more),
                Err(e) => self.heal(part, e).await?,
            }
        }
    }
}
