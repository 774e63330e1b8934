# fish completion for leaseq: the candidates of the bash completion (subcommands and options from
# the program itself, lease ids, task ids and node names from $LEASEQ_HOME via `leaseq __complete`).
function __leaseq_candidates
    set -l tokens (commandline -opc)
    set -l prog $tokens[1]
    set -l cmdpath
    set -l lease
    set -l n (count $tokens)
    for i in (seq 2 $n)
        set -l w $tokens[$i]
        switch $w
            case --lease
                if test $i -lt $n
                    set lease $tokens[(math $i + 1)]
                end
            case '--lease=*'
                set lease (string replace -- --lease= '' $w)
            case '-*'
            case '*'
                set -l before $tokens[(math $i - 1)]
                if test "$before" != --lease
                    set -a cmdpath $w
                end
        end
    end
    set -l lease_arg
    if test -n "$lease"
        set lease_arg --lease $lease
    end
    set -l kind commands
    switch "$tokens[-1]"
        case --lease
            set kind leases
        case --node
            set kind nodes
        case --slots
            echo auto
            return
        case --gpu-ids
            printf '%s\n' auto none
            return
        case '*'
            switch "$cmdpath"
                case cancel retry logs follow wait
                    set kind tasks
                case pause resume
                    set kind nodes
                case 'lease use' 'lease release' 'lease forget'
                    set kind leases
            end
    end
    switch $kind
        case commands
            $prog __complete commands $cmdpath 2>/dev/null
        case leases
            $prog __complete leases 2>/dev/null
        case '*'
            $prog __complete $kind $lease_arg 2>/dev/null
    end
end

complete -c leaseq -f -a '(__leaseq_candidates)'
