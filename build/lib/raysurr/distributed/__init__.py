"""One adapter per Ray library: actors (labeling), Train (training), Data (scoring), Tune (tuning), and the
connection (runtime). Nothing else in raysurr uses those libraries."""
