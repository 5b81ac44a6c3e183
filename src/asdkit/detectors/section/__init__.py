"""Section-classifier family: CNNs that tell sections apart; the softmax of the own section is the score."""
