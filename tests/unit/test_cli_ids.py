"""Ids Elasticsearch makes begin with '-' one time in 64: the CLI takes them as ids, not options."""

from elastic_ingest.app.cli import build_parser

DASHED = "-kzzP6IBT49BK6O3sYix"  # a job id CI met: `job failures` said "job_id is required"


def test_an_id_that_begins_with_a_dash_is_an_id():
    args = build_parser().parse_args(["job", "failures", DASHED, "-o", "json"])
    assert (args.job_id, args.output) == (DASHED, "json")
    args = build_parser().parse_args(["connector", "show", DASHED])
    assert args.connector_id == DASHED


def test_other_values_and_options_are_untouched():
    args = build_parser().parse_args(["-c", "my config.yml", "job", "show", "AbzzP6IBT49BK6O3sYix"])
    assert (args.config_file, args.job_id) == ("my config.yml", "AbzzP6IBT49BK6O3sYix")
