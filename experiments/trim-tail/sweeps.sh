# The runs of the trim-tail factor (see text-tower/sweeps.sh for how they are run): the 200
# rarest classes cut to 0 or 1 sample. Evaluation counts classes with fewer than 2 training
# samples as the tail, so "tail" is the accuracy on exactly the trimmed classes.
trims="$DATA/lt/trim-c0.subset,$DATA/lt/trim-c1.subset"
tail="--thresholds 100,2"
sweep sl sl.yaml "subset=$trims vocab.k=0,1 seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml" \
    --compare-args "$tail"
sweep sl-text-head sl-text-head.yaml "subset=$trims vocab.k=0,1 seed=$SEEDS" \
    --set "data=$DATA/lt/dataset.yaml" --set "head_from=$PRE" --compare-args "$tail"
sweep clip clip.yaml "subset=$trims seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml" \
    --compare-args "$tail"
sweep clip-frozen-text clip.yaml "subset=$trims seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml" \
    --set "model.text.init=$PRE" --set "model.text.freeze=true" --compare-args "$tail"
