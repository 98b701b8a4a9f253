"""The evaluation layer: registered splits, metrics and prediction kinds; the scorers;
the evaluator that scores a scenario's splits on any model; the summary schema."""
