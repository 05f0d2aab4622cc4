"""ViGGO: English sentence -> video-game meaning representation (MR), e.g.
`give_opinion(name[Diablo II], rating[good])`."""
