"""Refund exports for accountants (CSV, XLSX): `query` (which refunds, their finished rows),
`writers` (the file formats), `jobs` (queued, written by a worker into the database in
chunks, swept, downloaded). Import the modules; this package re-exports nothing."""
