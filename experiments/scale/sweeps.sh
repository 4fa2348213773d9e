# The runs of the data-scale factor (see text-tower/sweeps.sh for how they are run): fractions
# of the long-tailed training set, SL, CLIP, and CLIP with the frozen pre-trained text tower
# (language pre-training at each scale). All of the data is clip-vs-sl's SL and CLIP and
# text-tower's frozen run (the same configurations), not run again.
fracs="$DATA/lt/scale-0.125.subset,$DATA/lt/scale-0.25.subset,$DATA/lt/scale-0.5.subset"
sweep sl sl.yaml "subset=$fracs seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
sweep clip clip.yaml "subset=$fracs seed=$SEEDS" --set "data=$DATA/lt/dataset.yaml"
sweep clip-frozen-text ../text-tower/clip.yaml "subset=$fracs seed=$SEEDS" \
    --set "data=$DATA/lt/dataset.yaml" --set "model.text.init=$PRE"
